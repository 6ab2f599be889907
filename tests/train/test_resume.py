"""Kill and resume with the DeepSpeed engine: a run stopped after an epoch and started again on the same
run directory resumes from its ZeRO checkpoint and ends where an uninterrupted run ends."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_runs import TINY_TRAIN
from train_support import TWO_RANK_RUN, slurm_tasks

from dnsrec.compose import compose
from dnsrec.config.run import TrainRunConfig
from dnsrec.errors import CheckpointError
from dnsrec.pipeline import train_run
from dnsrec.train import epochs

TINY = [*TINY_TRAIN, "train.engine=deepspeed", "train.zero_stage=2"]
QUIET = {"log": lambda _: None}


def tiny(*extra: str) -> TrainRunConfig:
    return TrainRunConfig.from_mapping(compose("train", [*TINY, *extra]))


def tags(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "zero" / "fit").iterdir() if p.is_dir())


class Killed(Exception):
    pass


def test_killed_after_an_epoch_resumes_from_the_zero_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    straight = train_run(tiny("train.max_epochs=3"), tmp_path / "straight", **QUIET)

    # "Killed" at the end of epoch 2, right after its checkpoint was written (the process dies there).
    real_save = epochs.save_checkpoint

    def save_then_die(path: Path, state: dict) -> None:
        real_save(path, state)
        if path.name == "last.pt" and state["epoch"] == 2:
            raise Killed

    monkeypatch.setattr(epochs, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train_run(tiny("train.max_epochs=3"), tmp_path / "resumed", **QUIET)
    monkeypatch.setattr(epochs, "save_checkpoint", real_save)
    assert "epoch-2" in tags(tmp_path / "resumed")

    logs: list[str] = []
    resumed = train_run(tiny("train.max_epochs=3"), tmp_path / "resumed", log=logs.append)
    assert any("resuming" in line and "after epoch 2" in line for line in logs)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    assert resumed.metrics == straight.metrics
    assert resumed.best_epoch == straight.best_epoch and resumed.epochs == 3
    assert tags(tmp_path / "resumed") == ["epoch-3"]  # older ZeRO checkpoints are removed


def test_resume_with_another_engine_is_refused(tmp_path: Path) -> None:
    train_run(tiny("train.max_epochs=1"), tmp_path, **QUIET)
    with pytest.raises(CheckpointError, match=r"train\.engine=deepspeed"):
        train_run(tiny("train.max_epochs=2", "train.engine=torch"), tmp_path, **QUIET)
    with pytest.raises(CheckpointError, match="ZeRO-2"):
        train_run(tiny("train.max_epochs=2", "train.zero_stage=1"), tmp_path, **QUIET)


# A DNS-Rec run on two ranks, stopped after its first search epoch, then resumed on the same directory
# (a 1-epoch search is that state only under the step-counted temperature: see test_search's resume test).
RUN = [*TWO_RANK_RUN, "train.engine=deepspeed", "search.tau_schedule=steps"]


@pytest.mark.slow
def test_two_rank_search_resumes_to_the_same_result(tmp_path: Path) -> None:
    straight = slurm_tasks(2, "run", tmp_path / "a", str(tmp_path / "straight"), *RUN, "search.epochs=2")
    first = [*RUN, "search.epochs=1", "retrain.max_epochs=1"]
    slurm_tasks(2, "run", tmp_path / "b1", str(tmp_path / "resumed"), *first)
    for name in ("last.pt", "best.pt"):  # the retraining had not started yet
        (tmp_path / "resumed" / name).unlink()
    resumed = slurm_tasks(2, "run", tmp_path / "b2", str(tmp_path / "resumed"), *RUN, "search.epochs=2")
    for a, b in zip(straight, resumed, strict=True):
        assert a["alpha"] == b["alpha"] and a["beta"] == b["beta"] and a["architecture"] == b["architecture"]
        assert a["search_loss"] == b["search_loss"] and a["retrain_loss"] == b["retrain_loss"]
        assert a["metrics"] == b["metrics"]
