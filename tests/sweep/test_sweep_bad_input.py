"""Bad sweep commands: one clear message naming what is wrong, and nothing written to the database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sweep_support import TINY_RUN

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
    assert not db.exists() and not (tmp_path / "sweeps").exists()


def test_an_unreachable_database_is_one_line_with_the_password_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://dnsrec:s3cret@127.0.0.1:9/results"
    code = main(["sweep", "--db", url, *TINY_RUN, f"sweep.root={tmp_path}/sweeps"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot reach the results database" in err and "127.0.0.1:9" in err
    assert "s3cret" not in err and "***" in err
    assert not (tmp_path / "sweeps").exists()
