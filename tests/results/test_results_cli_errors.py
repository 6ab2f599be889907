"""Issue 10 case 7: `results export`, `results pareto --png` and `results status` that cannot do their
job say so in one `dnsrec: error:` line (no traceback) and leave nothing behind (no `.tmp` file)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dnsrec.cli import main


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dnsrec: error:"), err
    return err[0]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/sys/x.csv", "cannot export to /sys/x.csv: "),  # a place no one may write, not even root
        ("{tmp}/out", "cannot export to {tmp}/out: it is a directory"),
        ("{tmp}/missing/x.csv", "cannot export to {tmp}/missing/x.csv: no directory {tmp}/missing"),
    ],
)
def test_export_where_it_cannot_write(
    target: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "out").mkdir()
    db = f"sqlite:///{tmp_path / 'r.db'}"
    assert main(["results", "list", "--db", db]) == 0  # the database exists before the export
    before = sorted(p.name for p in tmp_path.iterdir())
    code = main(["results", "export", "--db", db, target.format(tmp=tmp_path)])
    assert code == 2 and expected.format(tmp=tmp_path) in one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no out.tmp, no missing/
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("target", ["/sys/p.png", "{tmp}/out"])
def test_pareto_png_where_it_cannot_write(target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "out").mkdir()
    path = target.format(tmp=tmp_path)
    assert main(["results", "pareto", "--db", f"sqlite:///{tmp_path / 'r.db'}", "--png", path]) == 2
    assert f"cannot write {path}: " in one_error_line(capsys)
    assert list((tmp_path / "out").iterdir()) == []


def test_status_of_an_unreachable_database_is_one_masked_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DNSREC_DB_URL", "postgresql://dnsrec:Qz9secret@127.0.0.1:1/results")
    assert main(["results", "status", "some-sweep"]) == 2
    line = one_error_line(capsys)
    assert "cannot reach the results database postgresql+psycopg://dnsrec:***@127.0.0.1:1/results" in line
    assert "Qz9secret" not in line
