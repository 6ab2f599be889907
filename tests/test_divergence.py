"""Issue 10 case 2: a diverging run (non-finite loss or architecture weights) stops with the reason: exit
non-zero alone, FAILED without a retry in a sweep; no result.json ever holds NaN."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from sweep_support import study_trials, sweep_args
from tiny_runs import TINY_RUN, TINY_TRAIN

from dnsrec.cli import main
from dnsrec.compose import compose
from dnsrec.errors import DNSRecError
from dnsrec.results import RunFilter, open_store
from dnsrec.run_result import RunResult
from dnsrec.sweep import run_sweep
from dnsrec.sweep.driver import SweepError


@pytest.mark.parametrize(
    ("command", "overrides", "expected"),
    [
        ("run", [*TINY_RUN, "lr=1e6", "search.arch_lr=1e6"], "the search's weight-step loss is nan at search epoch 1"),
        ("run", [*TINY_RUN, "search.lam=1e308", "search.arch_every=1"], "architecture weight |alpha|, |beta| is nan"),
        ("train", [*TINY_TRAIN, "lr=1e6"], "the training loss is nan at epoch 1"),
    ],
)
def test_a_diverging_run_stops_with_the_reason_and_records_nothing(
    command: str, overrides: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'results.db'}"
    code = main([command, *overrides, f"run_dir={tmp_path / 'run'}", "--db", db])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("dnsrec: error: diverged:"), err
    assert expected in err[0], err[0]
    assert not (tmp_path / "run" / "result.json").exists()
    store = open_store(db)
    try:
        assert store.list_runs(RunFilter()) == []
    finally:
        store.close()


def test_result_json_never_holds_nan(tmp_path: Path) -> None:
    good = RunResult.read(_any_result(tmp_path))
    good.metrics["valid"]["pop100/ndcg@10"] = math.nan
    with pytest.raises(DNSRecError, match=r"non-finite values at metrics\.valid\.pop100/ndcg@10"):
        good.write(tmp_path / "bad")
    assert not list((tmp_path / "bad").glob("result.json*"))  # neither the file nor a temporary one
    (tmp_path / "bad" / "result.json").write_text(json.dumps({"schema_version": 1, "x": math.nan}))
    with pytest.raises(DNSRecError, match="non-finite number NaN"):
        RunResult.read(tmp_path / "bad" / "result.json")


def _any_result(tmp_path: Path) -> Path:
    assert main(["train", *TINY_TRAIN, "train.max_epochs=1", f"run_dir={tmp_path / 'ok'}", "--no-db"]) == 0
    return tmp_path / "ok" / "result.json"


def test_a_diverging_trial_fails_with_the_reason_and_is_not_retried(tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    lr = ["sweep.space.lr.low=1e5", "sweep.space.lr.high=1e6", "sweep.max_failures=1"]
    raw = compose("sweep", sweep_args("diverge", 1, 1, f"sweep.root={tmp_path / 'sweeps'}", *lr))
    with pytest.raises(SweepError, match=r"last reason: .*diverged: the search.s weight-step loss is nan"):
        run_sweep(raw, f"sqlite:///{db}", out=lambda _: None)
    (trial,) = study_trials(db, "diverge")  # FAILED, and no retry of the point queued
    assert trial.state.name == "FAIL" and "diverged:" in trial.user_attrs["fail_reason"]
    store = open_store(f"sqlite:///{db}")
    try:
        (run,) = store.list_runs(RunFilter(sweep="diverge"))
    finally:
        store.close()
    assert run.status == "FAILED" and "diverged:" in (run.failure_reason or "")
