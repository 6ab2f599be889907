"""Issue 10 case 1: a run directory never resumes checkpoints made under another config. Alone, the run
refuses with one line naming the differing keys; in a sweep, the trial starts fresh in a new directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sweep_support import study_trials, sweep_args
from tiny_runs import TINY_RUN, TINY_TRAIN

from dnsrec.cli import main
from dnsrec.compose import compose
from dnsrec.config.run import TrainRunConfig
from dnsrec.pipeline import train_run
from dnsrec.run_result import RunResult
from dnsrec.sweep import run_sweep

QUIET = {"log": lambda _: None}


def test_a_finished_run_is_not_resumed_under_another_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    assert main(["run", *TINY_RUN, "lr=0.001", "search.lam=0.1", f"run_dir={run_dir}", "--no-db"]) == 0
    before = (run_dir / "result.json").read_text()
    capsys.readouterr()

    code = main(["run", *TINY_RUN, "lr=0.005", "search.lam=0.5", f"run_dir={run_dir}", "--no-db"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("dnsrec: error:"), err
    assert "search.lam: 0.1 -> 0.5" in err[0] and "train.lr: 0.001 -> 0.005" in err[0], err[0]
    assert (run_dir / "result.json").read_text() == before  # the old run's result is not overwritten


def test_a_checkpoint_of_another_config_is_refused_even_without_the_directory_stamp(tmp_path: Path) -> None:
    """The checkpoint itself carries the stamp: a `last.pt` copied into a fresh directory is still refused,
    while extending the same config (more epochs) still resumes."""
    cfg = TrainRunConfig.from_mapping(compose("train", [*TINY_TRAIN, "train.max_epochs=1"]))
    train_run(cfg, tmp_path / "a", **QUIET)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "last.pt").write_bytes((tmp_path / "a" / "last.pt").read_bytes())
    other = TrainRunConfig.from_mapping(compose("train", [*TINY_TRAIN, "train.max_epochs=2", "seed=3"]))
    with pytest.raises(Exception, match=r"last\.pt was made by another config \(train\.seed: 0 -> 3\)"):
        train_run(other, tmp_path / "b", **QUIET)

    logs: list[str] = []
    longer = TrainRunConfig.from_mapping(compose("train", [*TINY_TRAIN, "train.max_epochs=2"]))
    assert train_run(longer, tmp_path / "a", log=logs.append).epochs == 2
    assert any("resuming" in line for line in logs)


def test_a_sweep_on_a_reused_root_starts_its_trials_fresh(tmp_path: Path) -> None:
    root = f"sweep.root={tmp_path / 'sweeps'}"
    first = compose("sweep", sweep_args("reuse", 1, 1, root, "dropout=0.2", "sweep.sampler=random"))
    run_sweep(first, f"sqlite:///{tmp_path / 'a.db'}", out=lambda _: None)
    old = tmp_path / "sweeps" / "reuse" / "trial-0000"
    old_result = RunResult.read(old / "result.json")

    # The same sweep.root and name with a fresh database and another base config: trial 0 again, at the
    # same sampled point (same sampler seed), under another dropout.
    events: list[str] = []
    second = compose("sweep", sweep_args("reuse", 1, 1, root, "dropout=0.3", "sweep.sampler=random"))
    run_sweep(second, f"sqlite:///{tmp_path / 'b.db'}", out=events.append)
    (trial,) = study_trials(tmp_path / "b.db", "reuse")
    new_dir = Path(trial.user_attrs["run_dir"])
    assert new_dir != old and new_dir.name == "trial-0000-2", events
    assert any("dropout: 0.2 -> 0.3" in e and "starting fresh" in e for e in events), events
    result = RunResult.read(new_dir / "result.json")
    assert result.config["dropout"] == 0.3 and result.config["search"]["lam"] == trial.params["search.lam"]
    assert result.search is not None and old_result.search is not None
    assert result.search["trajectory"] != old_result.search["trajectory"]  # its own search, not the old one
    assert RunResult.read(old / "result.json") == old_result  # the old trial's directory is untouched
    assert json.loads((new_dir / "run_config.json").read_text())["values"]["dropout"] == 0.3
