"""The shared epoch loop (dnsrec.train.epochs) on its own, with a toy task: a linear regression whose
validation "metric" is scripted per epoch, so best-epoch tracking, the stop rule, resume after a kill,
divergence and unreadable resume files are checked in well under a second (fit and search use this loop;
their own tests run it on real data)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from dnsrec.config import TrainConfig
from dnsrec.errors import CheckpointError, ConfigMismatch, Diverged
from dnsrec.train.checkpoint import ConfigStamp, load_checkpoint, save_checkpoint
from dnsrec.train.device import Placement
from dnsrec.train.engine import Engine, make_engine
from dnsrec.train.epochs import (
    SELECTION_METRIC,
    EpochLoop,
    EpochPlan,
    EpochState,
    EpochTask,
    EpochTotals,
    ResumeFiles,
)

X = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
Y = X @ torch.tensor([1.0, -2.0, 0.5, 3.0])


class Samples:
    counts = np.ones(len(X), dtype=np.int64)

    def steps(self, batch: int, rng: np.random.Generator, bucket: bool = True) -> list[np.ndarray]:
        order = rng.permutation(len(X))
        return [order[i : i + batch] for i in range(0, len(order), batch)]


def squared_error(model: nn.Module, x: Tensor, y: Tensor, *, denominator: float) -> Tensor:
    return ((model(x)[:, 0] - y) ** 2).sum() / denominator


class Killed(Exception):
    pass


@dataclass
class ToyState(EpochState):
    losses: list[float] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return 0.0


class Toy(EpochTask[ToyState]):
    name, label, loss_name, lr = "toy", "toy epoch", "the toy loss", 0.05

    def __init__(self, engine: Engine, scores: list[float], patience: int = 99, warmup: int = 0) -> None:
        self.engine, self.scores, self.patience, self.warmup = engine, scores, patience, warmup
        self.state = ToyState()
        self.poison = False  # every step's loss is NaN
        self.kill_at: int | None = None  # "killed" (Killed) while evaluating this epoch
        self.weights: list[dict[str, Tensor]] = []  # after each epoch

    def stop_reason(self, elapsed: float) -> str | None:
        s = self.state
        if s.best_epoch and s.epoch - s.best_epoch >= self.patience:
            return "patience"
        return "max_epochs" if s.epoch >= len(self.scores) else None

    def step(self, idx: np.ndarray) -> float:
        loss = self.engine.train_step(idx, Samples.counts, lambda part: (X[part], Y[part]))
        return float("nan") if self.poison else loss

    def evaluate(self) -> dict[str, float]:
        if self.state.epoch + 1 == self.kill_at:
            raise Killed
        return {SELECTION_METRIC: self.scores[self.state.epoch]}  # scripted: the epoch being finished

    def record(self, totals: EpochTotals) -> None:
        self.state.losses.append(totals.loss)
        self.weights.append(self.engine.state_dict())

    def selectable(self, epoch: int) -> bool:
        return epoch > self.warmup

    def epoch_line(self) -> str:
        return f"toy epoch {self.state.epoch}"

    def resume_entries(self, engine_entries: dict[str, Any], best_weights: dict[str, Tensor]) -> dict[str, Any]:
        return {"weights": engine_entries, "best_weights": best_weights, "state": asdict(self.state)}

    def restore(self, saved: dict[str, Any], source: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
        self.state = ToyState(**saved["state"])
        return saved["weights"], saved["best_weights"]


STAMP = ConfigStamp({"toy": 1})


def toy_loop(
    scores: list[float], run_dir: Path | None = None, stamp: ConfigStamp | None = STAMP, **kw: Any
) -> tuple[EpochLoop[ToyState], Toy, nn.Module, list[str]]:
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    placement = Placement.resolve("cpu", "fp32")
    engine = make_engine(model, squared_error, TrainConfig(lr=0.05), placement, batch=16, weight_decay=0.0)
    task = Toy(engine, scores, **kw)
    logs: list[str] = []
    files = ResumeFiles.under(run_dir, "toy.pt", "toy", stamp, best="best.pt")
    return EpochLoop(task, engine, Samples(), EpochPlan(0, 16, True, False), files, logs.append), task, model, logs


def test_best_epoch_weights_and_patience(tmp_path: Path) -> None:
    loop, task, _, logs = toy_loop([0.1, 0.3, 0.2, 0.25, 0.9], tmp_path, patience=2)
    assert loop.run() == "patience"
    assert (task.state.epoch, task.state.best_epoch, task.state.best) == (4, 2, 0.3)
    second = task.weights[1]
    assert all(torch.equal(loop.best_weights[k], second[k]) for k in second)
    saved_best = load_checkpoint(tmp_path / "best.pt")
    assert all(torch.equal(saved_best[k], second[k]) for k in second)
    assert logs == [f"toy epoch {e}" for e in (1, 2, 3, 4)]
    assert task.state.losses[-1] < task.state.losses[0]  # it does train


def test_warmup_epochs_are_never_chosen() -> None:
    loop, task, _, _ = toy_loop([0.9, 0.1, 0.2], warmup=1)
    assert loop.run() == "max_epochs" and task.state.best_epoch == 3


def test_killed_after_an_epoch_resumes_to_the_same_end(tmp_path: Path) -> None:
    scores = [0.1, 0.3, 0.2, 0.4]
    straight, s_task, s_model, _ = toy_loop(scores, tmp_path / "straight")
    straight.run()

    killed, k_task, _, _ = toy_loop(scores, tmp_path / "resumed")
    k_task.kill_at = 3
    with pytest.raises(Killed):  # during epoch 3: the resume file holds epoch 2
        killed.run()

    resumed, r_task, r_model, logs = toy_loop(scores, tmp_path / "resumed")
    assert resumed.resume() and logs == [f"resuming toy from {tmp_path / 'resumed' / 'toy.pt'} after epoch 2"]
    resumed.run()
    assert r_task.state == s_task.state  # same losses: the same steps in the same order
    weights = zip(r_model.state_dict().values(), s_model.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in weights)
    assert all(torch.equal(resumed.best_weights[k], straight.best_weights[k]) for k in straight.best_weights)


def test_a_non_finite_loss_stops_with_where_and_a_hint() -> None:
    loop, task, _, _ = toy_loop([0.1, 0.2])
    task.poison = True
    with pytest.raises(Diverged, match=r"the toy loss is nan at toy epoch 1; .*\(lower lr, now 0\.05\)"):
        loop.run()


def test_resume_files_of_another_config_or_shape_are_refused_in_one_line(tmp_path: Path) -> None:
    loop, _, _, _ = toy_loop([0.1], tmp_path)
    loop.run()
    other, _, _, _ = toy_loop([0.1, 0.2], tmp_path, stamp=ConfigStamp({"toy": 2}))
    with pytest.raises(ConfigMismatch, match=r"toy\.pt was made by another config \(toy: 1 -> 2\)"):
        other.resume()

    saved = load_checkpoint(tmp_path / "toy.pt")
    del saved["best_weights"]  # as if written by another layout of the file
    save_checkpoint(tmp_path / "toy.pt", saved)
    again, _, _, _ = toy_loop([0.1, 0.2], tmp_path)
    with pytest.raises(CheckpointError, match=r"toy\.pt is not a toy resume file this dnsrec can read \(KeyError"):
        again.resume()
