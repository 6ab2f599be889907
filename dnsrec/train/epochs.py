"""The epoch loop shared by training (`dnsrec.train.loop.fit`) and the architecture search
(`dnsrec.nas.search.search`): one place for epochs, the validation pass after each, best-epoch
tracking, the stop rule, divergence detection, progress output and the resume file.

What differs between the two is an `EpochTask`: what one step does, how the model is scored, what an
epoch's record holds, when to stop, and how the task's typed state maps to its resume file. `EpochLoop`
runs a task:

    each epoch: seed dropout with (seed, epoch, rank); take the epoch's batches in an order that is a pure
    function of (seed, epoch); step through them (a non-finite loss stops the run, `Diverged`); evaluate on
    the validation split (rank 0's numbers, broadcast, decide on every rank); record the epoch; keep the
    weights of the best epoch by validation pop100 NDCG@10; write the resume file.

Started again with the same resume file, the loop continues after the last finished epoch, so a resumed
run takes the same steps as one never stopped. The resume file (`last.pt`, `search.pt`: rank 0 only)
carries the run's `ConfigStamp`, and one of another config is refused; for DeepSpeed it points at a
ZeRO checkpoint per rank under `zero/<kind>/epoch-<n>`, older ones are removed once it does.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np
import torch
from torch import Tensor

from dnsrec.config import SELECTION_METRIC
from dnsrec.errors import CheckpointError, Diverged, NoBestEpoch
from dnsrec.train import distributed
from dnsrec.train.checkpoint import STAMP_KEY, ConfigStamp, load_checkpoint, save_checkpoint
from dnsrec.train.engine import Engine
from dnsrec.train.progress import Progress


def stop_if_diverged(value: float, what: str, where: str, hint: str) -> None:
    """Stop the run (Diverged) at the first non-finite loss: every later step, the architecture derived
    from it and every metric would be garbage recorded as a success (a NaN run once became a Pareto point).
    Called with values that are equal on every rank, so all ranks stop together."""
    if not math.isfinite(value):
        raise Diverged(
            f"{Diverged.MARK} {what} is {value} at {where}; the run is stopped, nothing is recorded ({hint})"
        )


@dataclass
class EpochState:
    """What the loop itself keeps across epochs and restarts; a task's state adds its epoch records."""

    epoch: int = 0  # epochs finished
    best: float = -math.inf  # SELECTION_METRIC at best_epoch
    best_epoch: int = 0  # 0: none chosen yet

    @property
    def seconds(self) -> float:
        """Time spent in the finished epochs (a resumed run's time budget counts them)."""
        return 0.0


@dataclass(frozen=True)
class EpochTotals:
    """One finished epoch as the loop measured it, handed to `EpochTask.record`."""

    epoch: int
    loss: float  # mean over the epoch's targets
    targets: int
    train_seconds: float
    eval_seconds: float
    seconds: float  # the whole epoch, from its seeding to the end of its validation pass
    valid: dict[str, float]


class Batches(Protocol):
    """The epoch's training samples (`dnsrec.train.loop.TrainingSamples`): targets per sample, and the
    steps of an epoch as arrays of sample indices."""

    counts: np.ndarray

    def steps(self, batch: int, rng: np.random.Generator, bucket: bool = True) -> list[np.ndarray]: ...


def epoch_batches(samples: Batches, batch: int, seed: int, epoch: int, bucket: bool = True) -> list[np.ndarray]:
    """Epoch `epoch`'s steps in order, a pure function of (seed, epoch): a resumed run takes the batches an
    unbroken one would, and a diagnostic (benchmarks/controller_gradients.py) can find the ones an epoch took."""
    return samples.steps(batch, np.random.default_rng([seed, epoch]), bucket)


S = TypeVar("S", bound=EpochState)


class EpochTask(ABC, Generic[S]):
    """What one kind of training does inside `EpochLoop`; its `state` is what its resume file restores."""

    name: str  # "training", "search": in the resuming message
    label: str  # "epoch", "search epoch": progress lines and divergence messages
    loss_name: str  # what a divergence message calls the step loss
    lr: float  # the weights' learning rate, which a divergence message suggests lowering
    state: S

    @abstractmethod
    def stop_reason(self, elapsed: float) -> str | None:
        """Why to stop before the next epoch (`elapsed`: seconds of all epochs so far), or None."""

    def begin_epoch(self, epoch: int) -> None:
        """Before the epoch's first step (the engine is in training mode)."""

    @abstractmethod
    def step(self, idx: np.ndarray) -> float:
        """One weight step over the global batch `idx`; its mean loss (equal on every rank)."""

    def after_step(self, epoch: int, idx: np.ndarray, targets: int) -> None:
        """After a step's loss was checked and counted (`targets`: the step's)."""

    def where(self, epoch: int) -> str:
        """Where a divergence happened, for its message."""
        return f"{self.label} {epoch}"

    def bar_fields(self, targets: int, seconds: float) -> dict[str, float]:
        """The progress line's fields besides the loss (`targets` so far this epoch, in `seconds`)."""
        return {"targets_per_s": targets / seconds}

    @abstractmethod
    def evaluate(self) -> dict[str, float]:
        """The validation metrics of the current weights (the engine is in evaluation mode)."""

    @abstractmethod
    def record(self, totals: EpochTotals) -> None:
        """Add the finished epoch's record to `state` (the loop then counts it and judges it)."""

    def selectable(self, epoch: int) -> bool:
        """Whether `epoch` may be chosen as the best."""
        return True

    def nothing_selectable(self) -> str:
        """Why no epoch was chosen when the loop ends without a best epoch (the run stops with this)."""
        return f"no {self.label} had a finite validation {SELECTION_METRIC}"

    @abstractmethod
    def epoch_line(self) -> str:
        """The log line of the epoch just recorded and judged."""

    @abstractmethod
    def resume_entries(self, engine_entries: dict[str, Any], best_weights: dict[str, Tensor]) -> dict[str, Any]:
        """The resume file's content (without the stamp): the engine's entries, the best weights, `state`."""

    @abstractmethod
    def restore(self, saved: dict[str, Any], source: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """Set `state` (and the task's own objects) from the content of the resume file `source`; returns the engine's
        entries and the best epoch's weights. A missing or mistyped entry raises KeyError/TypeError/ValueError."""


@dataclass(frozen=True)
class EpochPlan:
    """How the epochs' batches are drawn and shown."""

    seed: int
    batch: int  # target positions per step
    bucket: bool  # group samples of similar length into a step
    progress: bool  # a progress line while an epoch runs


@dataclass(frozen=True)
class ResumeFiles:
    """Where a loop keeps what a restart needs."""

    path: Path  # the resume file, written by rank 0 after every epoch
    zero_dir: Path  # DeepSpeed's ZeRO checkpoints, one folder per epoch
    stamp: ConfigStamp | None  # the run's config: carried by the resume file, checked on resume
    best_path: Path | None = None  # where the best epoch's weights are also written, if anywhere

    @staticmethod
    def under(
        run_dir: Path | None, name: str, kind: str, stamp: ConfigStamp | None, best: str | None = None
    ) -> ResumeFiles | None:
        """`run_dir/name` and `run_dir/zero/kind`; None without a run directory (nothing is written)."""
        if run_dir is None:
            return None
        return ResumeFiles(run_dir / name, run_dir / "zero" / kind, stamp, run_dir / best if best else None)


class EpochLoop(Generic[S]):
    """Runs an `EpochTask` epoch by epoch; `best_weights` holds the best epoch's weights (at the start,
    the initial ones)."""

    def __init__(
        self,
        task: EpochTask[S],
        engine: Engine,
        samples: Batches,
        plan: EpochPlan,
        files: ResumeFiles | None,
        log: Callable[[str], None],
    ) -> None:
        self.task, self.engine, self.samples, self.plan, self.files, self.log = task, engine, samples, plan, files, log
        self.best_weights: dict[str, Tensor] = engine.state_dict()

    def resume(self) -> bool:
        """Continue from the resume file where there is one (every rank decides as rank 0 sees it)."""
        files = self.files
        if files is None or not distributed.broadcast_object(files.path.exists()):
            return False
        saved = load_checkpoint(files.path)
        if files.stamp is not None:
            files.stamp.check(saved, files.path)
        try:
            entries, best_weights = self.task.restore(saved, files.path)
            self.engine.load(files.zero_dir, entries, files.path)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(
                f"{files.path} is not a {self.task.name} resume file this dnsrec can read ({type(e).__name__}: "
                f"{e}); move it away or choose another run_dir"
            ) from e
        self.best_weights = best_weights
        self.log(f"resuming {self.task.name} from {files.path} after epoch {self.task.state.epoch}")
        return True

    def run(self) -> str:
        """Epochs until the task's stop rule says why to stop; returns that reason."""
        started = time.perf_counter() - self.task.state.seconds
        while (reason := self.task.stop_reason(time.perf_counter() - started)) is None:
            self._epoch(self.task.state.epoch + 1)
        if self.task.state.best_epoch == 0:  # the caller would take the initial or the last weights as the best
            raise NoBestEpoch(
                f"{NoBestEpoch.MARK} the {self.task.name} stopped ({reason}): {self.task.nothing_selectable()}"
            )
        return reason

    def _epoch(self, epoch: int) -> None:
        task, engine, plan, state = self.task, self.engine, self.plan, self.task.state
        begun = time.perf_counter()
        torch.manual_seed(distributed.epoch_seed(plan.seed, epoch, engine.rank))  # dropout masks
        engine.set_training(True)
        steps = epoch_batches(self.samples, plan.batch, plan.seed, epoch, plan.bucket)
        bar = Progress(len(steps), f"{task.label} {epoch}", enabled=plan.progress and distributed.is_main())
        task.begin_epoch(epoch)
        t0, loss_sum, seen = time.perf_counter(), 0.0, 0
        for idx in steps:
            loss = task.step(idx)
            stop_if_diverged(loss, task.loss_name, task.where(epoch), f"lower lr, now {task.lr:g}")
            n = int(self.samples.counts[idx].sum())
            loss_sum, seen = loss_sum + loss * n, seen + n
            task.after_step(epoch, idx, n)
            bar.update(1, loss=loss_sum / max(seen, 1), **task.bar_fields(seen, time.perf_counter() - t0))
        bar.close()
        train_seconds = time.perf_counter() - t0

        engine.set_training(False)
        t1 = time.perf_counter()
        valid = distributed.broadcast_object(task.evaluate())  # rank 0's numbers decide on every rank
        eval_seconds = time.perf_counter() - t1
        ended = time.perf_counter()
        task.record(
            EpochTotals(epoch, loss_sum / max(seen, 1), seen, train_seconds, eval_seconds, ended - begun, valid)
        )
        state.epoch = epoch
        if task.selectable(epoch) and valid[SELECTION_METRIC] > state.best:
            state.best, state.best_epoch = valid[SELECTION_METRIC], epoch
            self.best_weights = engine.state_dict()
            if self.files is not None and self.files.best_path is not None and distributed.is_main():
                save_checkpoint(self.files.best_path, self.best_weights)
        self.log(task.epoch_line())
        self._save(epoch)

    def _save(self, epoch: int) -> None:
        """The resume file after `epoch` (rank 0), pointing at this epoch's ZeRO checkpoint (every rank)."""
        files = self.files
        if files is None:
            return
        tag = f"epoch-{epoch}"
        entries = self.engine.save(files.zero_dir, tag)
        if distributed.is_main():
            stamped = {STAMP_KEY: files.stamp.entry()} if files.stamp is not None else {}
            save_checkpoint(files.path, {**self.task.resume_entries(entries, self.best_weights), **stamped})
            self.engine.prune(files.zero_dir, keep=tag)
        distributed.barrier()
