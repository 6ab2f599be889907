"""Issue 10 case 5: an unreadable result.json (random bytes) is an invalid result: `results ingest` says so
in one line, and a sweep fails the trial with that reason and retries it (it never stays RUNNING)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sweep_support import states, study_trials, sweep_args

from dnsrec.cli import main
from dnsrec.compose import compose
from dnsrec.sweep import run_sweep
from dnsrec.sweep.run import prepare
from dnsrec.sweep.study import open_study

RANDOM_BYTES = bytes(range(128, 256)) + os.urandom(512)  # never valid UTF-8: 0x80 cannot start a character


def test_ingest_of_random_bytes_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "result.json").write_bytes(RANDOM_BYTES)
    assert main(["results", "ingest", str(tmp_path / "run"), "--db", f"sqlite:///{tmp_path / 'r.db'}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dnsrec: error:"), err
    assert "result.json" in err[0] and "not a readable result file (UnicodeDecodeError" in err[0]


def test_a_running_trial_whose_result_is_random_bytes_fails_and_is_retried(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'results.db'}"
    raw = compose("sweep", sweep_args("garbled", 1, 1, f"sweep.root={tmp_path / 'sweeps'}"))
    # A driver that died while trial 0 ran, and a job that left random bytes as its result.json.
    cfg, base, _ = prepare(raw)
    study = open_study(cfg, base, db)
    trial = study.ask()
    for p in cfg.space:
        p.suggest(trial)
    run_dir = (tmp_path / "sweeps" / "garbled" / "trial-0000").resolve()
    run_dir.mkdir(parents=True)
    (run_dir / "result.json").write_bytes(RANDOM_BYTES)
    trial.set_user_attr("run_dir", str(run_dir))

    summary = run_sweep(raw, db, out=lambda _: None)
    assert summary.complete == 1
    trials = study_trials(tmp_path / "results.db", "garbled")
    assert states(trials) == {"FAIL": 1, "COMPLETE": 1}
    failed = next(t for t in trials if t.state.name == "FAIL")
    assert "result left by a lost job is invalid" in failed.user_attrs["fail_reason"]
    assert "UnicodeDecodeError" in failed.user_attrs["fail_reason"]
