"""The training loop: Adam, CE over all items, early stopping on validation pop100 NDCG@10, resumable.

Each epoch ends with a validation pass, `last.pt` (everything needed to resume) and, on improvement,
`best.pt` (the model only). Started again on the same run directory, `fit` resumes after the last
finished epoch; batch order and dropout seeds are pure functions of (seed, epoch), so a resumed run takes
the same steps. The epochs, checkpoints and resume are the loop the search shares (`dnsrec.train.epochs`);
what is training's own is `_Fit`. The optimizer step goes through an engine (`dnsrec.train.engine`: plain
torch or DeepSpeed ZeRO), on one process or several.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from dnsrec.config import TrainConfig
from dnsrec.data.sequences import SequenceData
from dnsrec.evaluate import Evaluator
from dnsrec.models import SASRec
from dnsrec.train import distributed
from dnsrec.train.batches import (
    DEFAULT_WINDOW_OVERLAP,
    build_windows,
    pack_batches,
    prefix_windows,
)
from dnsrec.train.checkpoint import ConfigStamp
from dnsrec.train.device import Placement
from dnsrec.train.engine import Engine, LossFn, make_engine
from dnsrec.train.epochs import (
    SELECTION_METRIC,
    EpochLoop,
    EpochPlan,
    EpochState,
    EpochTask,
    EpochTotals,
    ResumeFiles,
)
from dnsrec.train.loss import DEFAULT_CHUNK_ELEMENTS, item_cross_entropy


@dataclass
class EpochLog:
    epoch: int
    loss: float
    train_seconds: float
    eval_seconds: float
    targets_per_second: float
    valid: dict[str, float]


@dataclass
class FitResult:
    best_epoch: int
    epochs: int
    stopped: str  # "patience", "max_epochs" or "time_budget"
    best_valid: dict[str, float]
    history: list[EpochLog] = field(default_factory=list)

    @property
    def seconds_per_epoch(self) -> float:
        return float(np.mean([h.train_seconds for h in self.history])) if self.history else 0.0

    @property
    def eval_seconds(self) -> float:
        return float(np.mean([h.eval_seconds for h in self.history])) if self.history else 0.0


def scorer_of(model: SASRec, placement: Placement) -> Callable[[Tensor, Tensor], Tensor]:
    def score(seqs: Tensor, lengths: Tensor) -> Tensor:
        with placement.autocast():
            return model.score(seqs, lengths)

    return score


class TrainingSamples:
    """The epoch's training windows in either formulation, as (inputs, targets) device tensors per step:
    `window` at `overlap` (`train.window_overlap`), `prefix` at stride 1 (dnsrec.train.batches)."""

    def __init__(
        self, data: SequenceData, mode: str, device: torch.device, overlap: float = DEFAULT_WINDOW_OVERLAP
    ) -> None:
        self.device = device
        w = prefix_windows(data) if mode == "prefix" else build_windows(data, overlap=overlap)
        self.inputs = torch.from_numpy(w.inputs).to(device)
        self.targets = torch.from_numpy(w.targets).to(device)
        self.counts = (w.targets > 0).sum(axis=1)
        self.lengths: np.ndarray = (w.inputs > 0).sum(axis=1)
        self.n_targets = int(self.counts.sum())

    def steps(self, batch: int, rng: np.random.Generator, bucket: bool = True) -> list[np.ndarray]:
        return pack_batches(self.counts, batch, rng, self.lengths if bucket else None)

    def get(self, idx: np.ndarray) -> tuple[Tensor, Tensor]:
        i = torch.from_numpy(idx).to(self.device)
        # Right padding beyond the batch's longest window changes no real position (causal attention,
        # positions counted from the first item), so it is cut off.
        width = int(self.lengths[idx].max())
        return self.inputs[i, :width], self.targets[i, :width]


def train_step(
    model: SASRec,
    inputs: Tensor,
    targets: Tensor,
    placement: Placement,
    denominator: float | None = None,
    ce_chunk: int = DEFAULT_CHUNK_ELEMENTS,
    last_only: bool = False,
) -> Tensor:
    """Loss of one step: one causal forward, CE at every position that holds a target.

    The summed CE is divided by `denominator` (default: this batch's targets, i.e. the mean); `ce_chunk`
    is `train.ce_chunk`, the logits per chunk of the CE (0 = unchunked). With `last_only` (the per-prefix
    formulation, `train.mode=prefix`), windows whose one target sits at their last real position, every
    stride-1 window after a user's first, run their last layer at that position only (`model.last_hidden`:
    its keys and values still cover the window), which gives the same hidden state for that target.
    """
    single = _last_target_only(inputs, targets) if last_only else None
    if single is None:
        with placement.autocast():
            hidden = model(inputs)  # (B, N, d)
        return positions_loss(hidden, model.output_weight, targets, placement, denominator, ce_chunk)
    rows: list[Tensor] = []
    items: list[Tensor] = []
    rest = ~single
    with placement.autocast():
        if bool(rest.any()):
            mask = targets[rest] > 0
            rows.append(model(inputs[rest])[mask])
            items.append(targets[rest][mask])
        lengths = (inputs[single] > 0).sum(dim=1)
        rows.append(model.last_hidden(inputs[single], lengths))
        items.append(targets[single].gather(1, (lengths - 1)[:, None])[:, 0])
    return item_cross_entropy(
        torch.cat(rows),
        model.output_weight,
        torch.cat(items),
        compute_dtype=placement.compute_dtype,
        denominator=denominator,
        chunk_elements=ce_chunk,
    )


def _last_target_only(inputs: Tensor, targets: Tensor) -> Tensor | None:
    """(B,) bool: the windows whose only target is at their last real position; None if there are none."""
    last = ((inputs > 0).sum(dim=1) - 1).clamp(min=0)
    at_last = targets.gather(1, last[:, None])[:, 0] > 0
    single = at_last & ((targets > 0).sum(dim=1) == 1)
    return single if bool(single.any()) else None


def positions_loss(
    hidden: Tensor,
    output_weight: Tensor,
    targets: Tensor,
    placement: Placement,
    denominator: float | None,
    ce_chunk: int,
) -> Tensor:
    """The catalogue CE of every position that holds a target (targets > 0) of a (B, N, d) forward: the one
    loss of a training step, for a fixed model and for the supernet alike."""
    mask = targets > 0
    return item_cross_entropy(
        hidden[mask],
        output_weight,
        targets[mask],
        compute_dtype=placement.compute_dtype,
        denominator=denominator,
        chunk_elements=ce_chunk,
    )


def window_loss(placement: Placement, ce_chunk: int = DEFAULT_CHUNK_ELEMENTS, last_only: bool = False) -> LossFn:
    """`train_step` as an engine's loss function: (model, inputs, targets, denominator=) -> loss."""

    def loss(model: SASRec, inputs: Tensor, targets: Tensor, *, denominator: float) -> Tensor:
        return train_step(model, inputs, targets, placement, denominator, ce_chunk, last_only)

    return loss


def fit(
    model: SASRec,
    data: SequenceData,
    evaluator: Evaluator,
    cfg: TrainConfig,
    run_dir: Path | None = None,
    log: Callable[[str], None] = print,
    stamp: ConfigStamp | None = None,
) -> FitResult:
    """Train `model` to early stop with the engine `cfg.engine`; on return it holds the best epoch's weights.

    On several ranks every rank calls this with the same arguments: each takes its share of every step,
    evaluates the same weights (rank 0's metrics decide, so all ranks stop together), and only rank 0
    writes files. The resume state is `last.pt` (rank 0), plus for DeepSpeed a ZeRO checkpoint per rank
    under `zero/fit/epoch-<n>`. With a `stamp` (the run's config, `dnsrec.pipeline.run_stamp`) `last.pt`
    carries it, and a `last.pt` of another config is refused (ConfigMismatch) instead of resumed.
    """
    placement = Placement.resolve(cfg.device, cfg.precision)
    log = distributed.main_only(log)
    model.to(placement.device)
    engine = make_engine(
        model,
        window_loss(placement, cfg.ce_chunk, last_only=cfg.mode == "prefix"),
        cfg,
        placement,
        batch=cfg.batch,
        weight_decay=cfg.weight_decay,
    )
    samples = TrainingSamples(data, cfg.mode, placement.device, cfg.window_overlap)
    task = _Fit(engine, samples, evaluator, placement, cfg)
    files = ResumeFiles.under(run_dir, "last.pt", "fit", stamp, best="best.pt")
    epochs = EpochLoop(task, engine, samples, EpochPlan(cfg.seed, cfg.batch, cfg.bucket, cfg.progress), files, log)
    epochs.resume()
    ranks = f", {engine.world_size} ranks" if engine.world_size > 1 else ""
    log(
        f"training on {placement.describe()}{ranks}, engine {_engine_name(engine)}: "
        f"{samples.n_targets:,} targets per epoch, mode={cfg.mode}"
    )
    stopped = epochs.run()
    model.load_state_dict(epochs.best_weights)
    state = task.state
    best_valid = state.history[state.best_epoch - 1].valid if state.best_epoch else {}
    return FitResult(state.best_epoch, state.epoch, stopped, best_valid, state.history)


@dataclass
class FitState(EpochState):
    """`fit`'s resumable state: the loop's plus one `EpochLog` per finished epoch."""

    history: list[EpochLog] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(h.train_seconds + h.eval_seconds for h in self.history)


class _Fit(EpochTask[FitState]):
    """Training a fixed model: one engine step per batch, early stopping on validation pop100 NDCG@10."""

    name, label, loss_name = "training", "epoch", "the training loss"

    def __init__(
        self, engine: Engine, samples: TrainingSamples, evaluator: Evaluator, placement: Placement, cfg: TrainConfig
    ) -> None:
        self.engine, self.samples, self.evaluator, self.placement, self.cfg = engine, samples, evaluator, placement, cfg
        self.lr = cfg.lr
        self.state = FitState()

    def stop_reason(self, elapsed: float) -> str | None:
        state, cfg = self.state, self.cfg
        if state.best_epoch and state.epoch - state.best_epoch >= cfg.patience:
            return "patience"
        if state.epoch >= cfg.max_epochs:
            return "max_epochs"
        if cfg.max_minutes is not None and elapsed > 60 * cfg.max_minutes:
            return "time_budget"
        return None

    def step(self, idx: np.ndarray) -> float:
        return self.engine.train_step(idx, self.samples.counts, self.samples.get)

    def evaluate(self) -> dict[str, float]:
        with self.engine.weights() as net:
            return self.evaluator.evaluate(scorer_of(cast(SASRec, net), self.placement), "valid")

    def record(self, t: EpochTotals) -> None:
        per_second = t.targets / t.train_seconds
        self.state.history.append(EpochLog(t.epoch, t.loss, t.train_seconds, t.eval_seconds, per_second, t.valid))

    def epoch_line(self) -> str:
        state, entry = self.state, self.state.history[-1]
        return (
            f"epoch {entry.epoch}: loss {entry.loss:.4f}, {entry.train_seconds:.1f}s train, "
            f"{entry.eval_seconds:.1f}s eval, valid {SELECTION_METRIC} {entry.valid[SELECTION_METRIC]:.4f} "
            f"(best {state.best:.4f} @ {state.best_epoch})"
        )

    # last.pt: the engine's entries at the top level, beside the best weights and the state's fields
    def resume_entries(self, engine_entries: dict[str, Any], best_weights: dict[str, Tensor]) -> dict[str, Any]:
        state = self.state
        return {
            **engine_entries,
            "best_model": best_weights,
            "best": state.best,
            "best_epoch": state.best_epoch,
            "epoch": state.epoch,
            "history": [asdict(h) for h in state.history],
        }

    def restore(self, saved: dict[str, Any], source: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
        history = [EpochLog(**h) for h in saved["history"]]
        self.state = FitState(int(saved["epoch"]), float(saved["best"]), int(saved["best_epoch"]), history)
        return saved, saved["best_model"]


def _engine_name(engine: Engine) -> str:
    stage = getattr(engine, "zero_stage", None)
    return engine.kind + (f" ZeRO-{stage}" if stage is not None else "")
