"""Bad sweep commands: one clear message naming what is wrong, and nothing written to the database."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_runs import TINY_RUN

from dnsrec.cli import main

CASES = [
    (["launcher=pbs"], "launcher/pbs"),
    (["launcher.name=pbs"], "config key 'launcher.name': expected one of local, slurm, ray, got 'pbs'"),
    (["sweep.space.lr.low=0.01", "sweep.space.lr.high=0.01"], "config key 'sweep.space.lr': empty range"),
    (["sweep.space.search.lam.low=1.0", "sweep.space.search.lam.high=0.1"], "'sweep.space.search.lam': inverted"),
    (["+sweep.space.search.lamda.low=0.1", "+sweep.space.search.lamda.high=1"], "no key 'lamda' in search"),
    (["launcher.resources.gpus=1"], "launcher.resources.gpus=1: this machine has 0 GPU(s)"),
    (["sweep.trials=0"], "config key 'sweep.trials': expected a positive integer"),
    (["gates.layers=7"], "gates.layers"),
    # Names that are paths: `..` once wrote trial-0000/ and jobs/ into the parent of sweep.root.
    (["sweep.name=..", "sweep.trials=1"], "config key 'sweep.name': expected a name of letters"),
    (["sweep.name=.", "sweep.trials=1"], "not '.' or '..'"),
    (["sweep.name=a/b", "sweep.trials=1"], "config key 'sweep.name'"),
]


@pytest.mark.parametrize(("overrides", "message"), CASES, ids=[c[1][:40] for c in CASES])
def test_refused_before_anything_is_written(
    overrides: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "results.db"
    code = main(["sweep", "--db", f"sqlite:///{db}", *TINY_RUN, f"sweep.root={tmp_path}/sweeps", *overrides])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err
    assert "Traceback" not in err
    assert not db.exists() and sorted(p.name for p in tmp_path.iterdir()) == []  # nothing, not even beside


def test_an_unreachable_database_is_one_line_with_the_password_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DNSREC_DB_URL", "postgresql://dnsrec:s3cret@127.0.0.1:9/results")
    code = main(["sweep", *TINY_RUN, f"sweep.root={tmp_path}/sweeps"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the results database" in err and "127.0.0.1:9" in err
    assert "s3cret" not in err and "***" in err
    assert not (tmp_path / "sweeps").exists()


def test_a_password_on_the_command_line_is_refused_and_never_echoed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["sweep", "--db", "postgresql://dnsrec:s3cret@127.0.0.1:9/results", *TINY_RUN])
    err = capsys.readouterr().err
    assert code == 2 and "a password on the command line is visible to other users" in err
    assert "s3cret" not in err


def test_the_password_file_must_be_readable_by_its_owner_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "db-password"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    monkeypatch.setenv("DNSREC_DB_URL", "postgresql://dnsrec@127.0.0.1:9/results")
    monkeypatch.setenv("DNSREC_DB_PASSWORD_FILE", str(secret))
    assert main(["sweep", *TINY_RUN, f"sweep.root={tmp_path}/sweeps"]) == 2
    err = capsys.readouterr().err
    assert "mode 644; the password file must be owned by you and readable by you alone" in err
    secret.chmod(0o600)  # now it is used: the server is unreachable, and the password never shown
    assert main(["sweep", *TINY_RUN, f"sweep.root={tmp_path}/sweeps"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the results database postgresql+psycopg://dnsrec:***@127.0.0.1:9" in err
    assert "s3cret" not in err
