"""Issue 10 case 8: a database password never shows, whatever it holds. A password with an unescaped `@`
was shown as all but its first part (`dnsrec:***@ss@w0rdX@...`): masks run from `://user:` to the LAST `@`."""

from __future__ import annotations

import re

import pytest

from dnsrec.cli import main
from dnsrec.results.database import mask_text, masked, resolve_url

# Each password's parts are distinctive tokens, so any one of them leaking is seen.
TOKENS = ("Qz9", "Xk7", "Wm3", "Rt5", "Yp2", "Ln8")
PASSWORDS = ("Qz9@Xk7@Wm3", "Qz9:Xk7:Wm3", "Qz9/Xk7", "Qz9%Xk7%20", "Qz9#Xk7", "Qz9@Xk7:Wm3/Rt5%Yp2#Ln8")


def leaked(text: str) -> list[str]:
    return [t for t in TOKENS if t in text]


@pytest.mark.parametrize("password", PASSWORDS)
def test_an_unescaped_password_is_masked_in_any_text(password: str) -> None:
    url = f"postgresql://dnsrec:{password}@db.example:5432/results"
    text = mask_text(f"cannot reach {url} (mail admin@example.org)")
    assert not leaked(text), text
    assert "postgresql://dnsrec:***@db.example:5432/results" in text and "admin@example.org" in text


@pytest.mark.parametrize("password", PASSWORDS)
def test_a_parsed_url_is_masked_even_when_the_parse_split_the_password(password: str) -> None:
    try:
        shown = masked(resolve_url(f"postgresql://dnsrec:{password}@db.example:5432/results"))
    except Exception as e:  # a URL SQLAlchemy cannot parse at all: the refusal is masked too
        shown = str(e)
    assert not leaked(shown), shown


@pytest.mark.parametrize("password", PASSWORDS)
def test_the_command_shows_one_line_without_the_password(
    password: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DNSREC_DB_URL", f"postgresql://dnsrec:{password}@127.0.0.1:1/results")
    assert main(["results", "list"]) != 0
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dnsrec: error:"), err
    assert not leaked(captured.out + captured.err), err
    assert re.search(r"dnsrec:\*\*\*@", err[0]), err
