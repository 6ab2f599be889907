"""The training loop: Adam, CE over all items, early stopping on validation pop100 NDCG@10, resumable.

Each epoch ends with a validation pass, `last.pt` (everything needed to resume) and, on improvement,
`best.pt` (the model only). Started again on the same run directory, `fit` resumes after the last
finished epoch; batch order and dropout seeds are pure functions of (seed, epoch), so a resumed run takes
the same steps. The optimizer step goes through an engine (`dnsrec.train.engine`: plain torch or
DeepSpeed ZeRO), on one process or several.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from dnsrec.config import TrainConfig
from dnsrec.data.sequences import SequenceData
from dnsrec.errors import Diverged
from dnsrec.evaluate import Evaluator
from dnsrec.models import SASRec
from dnsrec.train import distributed
from dnsrec.train.batches import build_windows, pack_batches, prefix_batch, prefix_samples
from dnsrec.train.checkpoint import STAMP_KEY, ConfigStamp, load_checkpoint, save_checkpoint
from dnsrec.train.device import Placement
from dnsrec.train.engine import Engine, LossFn, make_engine
from dnsrec.train.loss import DEFAULT_CHUNK_ELEMENTS, item_cross_entropy
from dnsrec.train.progress import Progress

SELECTION_METRIC = "pop100/ndcg@10"  # docs/method.md: validation pop100 NDCG@10 drives early stopping


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


def stop_if_diverged(value: float, what: str, where: str, hint: str) -> None:
    """Stop the run (Diverged) at the first non-finite loss: every later step, the architecture derived
    from it and every metric would be garbage recorded as a success (a NaN run once became a Pareto point).
    Called with values that are equal on every rank, so all ranks stop together."""
    if not math.isfinite(value):
        raise Diverged(
            f"{Diverged.MARK} {what} is {value} at {where}; the run is stopped, nothing is recorded ({hint})"
        )


def scorer_of(model: SASRec, placement: Placement) -> Callable[[Tensor, Tensor], Tensor]:
    def score(seqs: Tensor, lengths: Tensor) -> Tensor:
        with placement.autocast():
            return model.score(seqs, lengths)

    return score


class TrainingSamples:
    """The epoch's training samples in either formulation, as (inputs, targets) device tensors per step."""

    def __init__(self, data: SequenceData, mode: str, device: torch.device) -> None:
        self.data, self.mode, self.device = data, mode, device
        if mode == "window":
            w = build_windows(data)
            self.inputs = torch.from_numpy(w.inputs).to(device)
            self.targets = torch.from_numpy(w.targets).to(device)
            self.counts = (w.targets > 0).sum(axis=1)
            self.lengths: np.ndarray | None = (w.inputs > 0).sum(axis=1)
        else:
            self.pairs = prefix_samples(data)
            self.counts = np.ones(len(self.pairs), dtype=np.int64)
            self.lengths = None
        self.n_targets = int(self.counts.sum())

    def steps(self, batch: int, rng: np.random.Generator, bucket: bool = True) -> list[np.ndarray]:
        return pack_batches(self.counts, batch, rng, self.lengths if bucket else None)

    def get(self, idx: np.ndarray) -> tuple[Tensor, Tensor]:
        if self.mode == "window":
            i = torch.from_numpy(idx).to(self.device)
            # Right padding beyond the batch's longest window changes no real position (causal attention,
            # positions counted from the first item), so it is cut off.
            width = int(self.lengths[idx].max()) if self.lengths is not None else self.inputs.shape[1]
            return self.inputs[i, :width], self.targets[i, :width]
        w = prefix_batch(self.data, self.pairs[idx])
        width = int((w.inputs > 0).sum(axis=1).max())
        return (
            torch.from_numpy(w.inputs[:, :width]).to(self.device),
            torch.from_numpy(w.targets[:, :width]).to(self.device),
        )


def train_step(
    model: SASRec,
    inputs: Tensor,
    targets: Tensor,
    placement: Placement,
    denominator: float | None = None,
    ce_chunk: int = DEFAULT_CHUNK_ELEMENTS,
) -> Tensor:
    """Loss of one step: one causal forward, CE at every position that holds a target.

    The summed CE is divided by `denominator` (default: this batch's targets, i.e. the mean); `ce_chunk`
    is `train.ce_chunk`, the logits per chunk of the CE (0 = unchunked).
    """
    with placement.autocast():
        hidden = model(inputs)  # (B, N, d)
    mask = targets > 0
    return item_cross_entropy(
        hidden[mask],
        model.output_weight,
        targets[mask],
        compute_dtype=placement.compute_dtype,
        denominator=denominator,
        chunk_elements=ce_chunk,
    )


def window_loss(placement: Placement, ce_chunk: int = DEFAULT_CHUNK_ELEMENTS) -> LossFn:
    """`train_step` as an engine's loss function: (model, inputs, targets, denominator=) -> loss."""

    def loss(model: SASRec, inputs: Tensor, targets: Tensor, *, denominator: float) -> Tensor:
        return train_step(model, inputs, targets, placement, denominator, ce_chunk)

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
        model, window_loss(placement, cfg.ce_chunk), cfg, placement, batch=cfg.batch, weight_decay=cfg.weight_decay
    )
    samples = TrainingSamples(data, cfg.mode, placement.device)

    result = FitResult(best_epoch=0, epochs=0, stopped="max_epochs", best_valid={})
    best_state: dict[str, Tensor] = engine.state_dict()
    best = -math.inf
    last_path = run_dir / "last.pt" if run_dir else None
    zero_dir = run_dir / "zero" / "fit" if run_dir else None
    if last_path is not None and zero_dir is not None and distributed.broadcast_object(last_path.exists()):
        state = load_checkpoint(last_path)
        if stamp is not None:
            stamp.check(state, last_path)
        engine.load(zero_dir, state, last_path)
        best_state, best = state["best_model"], state["best"]
        result.history = [EpochLog(**h) for h in state["history"]]
        result.best_epoch, result.epochs = state["best_epoch"], state["epoch"]
        result.best_valid = result.history[result.best_epoch - 1].valid if result.best_epoch else {}
        log(f"resuming from {last_path} after epoch {result.epochs}")

    ranks = f", {engine.world_size} ranks" if engine.world_size > 1 else ""
    log(
        f"training on {placement.describe()}{ranks}, engine {_engine_name(engine)}: "
        f"{samples.n_targets:,} targets per epoch, mode={cfg.mode}"
    )
    started = time.perf_counter() - sum(h.train_seconds + h.eval_seconds for h in result.history)
    while (reason := _stop_reason(result, cfg, time.perf_counter() - started)) is None:
        epoch = result.epochs + 1
        torch.manual_seed(distributed.epoch_seed(cfg.seed, epoch, engine.rank))  # dropout masks
        engine.set_training(True)
        steps = samples.steps(cfg.batch, np.random.default_rng([cfg.seed, epoch]), cfg.bucket)
        bar = Progress(len(steps), f"epoch {epoch}", enabled=cfg.progress and distributed.is_main())
        t0, loss_sum, seen = time.perf_counter(), 0.0, 0
        for idx in steps:
            loss = engine.train_step(idx, samples.counts, samples.get)
            stop_if_diverged(loss, "the training loss", f"epoch {epoch}", f"lower lr, now {cfg.lr:g}")
            n = int(samples.counts[idx].sum())
            loss_sum, seen = loss_sum + loss * n, seen + n
            bar.update(1, loss=loss_sum / seen, targets_per_s=seen / (time.perf_counter() - t0))
        bar.close()
        train_seconds = time.perf_counter() - t0

        engine.set_training(False)
        t1 = time.perf_counter()
        with engine.weights() as net:
            valid = evaluator.evaluate(scorer_of(cast(SASRec, net), placement), "valid")
        valid = distributed.broadcast_object(valid)  # rank 0's numbers decide, so every rank stops together
        eval_seconds = time.perf_counter() - t1
        entry = EpochLog(epoch, loss_sum / max(seen, 1), train_seconds, eval_seconds, seen / train_seconds, valid)
        result.history.append(entry)
        result.epochs = epoch
        if valid[SELECTION_METRIC] > best:
            best, result.best_epoch, result.best_valid = valid[SELECTION_METRIC], epoch, valid
            best_state = engine.state_dict()
            if run_dir and distributed.is_main():
                save_checkpoint(run_dir / "best.pt", best_state)
        log(
            f"epoch {epoch}: loss {entry.loss:.4f}, {train_seconds:.1f}s train, {eval_seconds:.1f}s eval, "
            f"valid {SELECTION_METRIC} {valid[SELECTION_METRIC]:.4f} (best {best:.4f} @ {result.best_epoch})"
        )
        if last_path is not None and zero_dir is not None:
            tag = f"epoch-{epoch}"
            entries = engine.save(zero_dir, tag)
            if distributed.is_main():
                stamped = {STAMP_KEY: stamp.entry()} if stamp is not None else {}
                save_checkpoint(last_path, {**entries, **_resume_state(result, best_state, best), **stamped})
                engine.prune(zero_dir, keep=tag)
            distributed.barrier()
    result.stopped = reason
    model.load_state_dict(best_state)
    return result


def _engine_name(engine: Engine) -> str:
    stage = getattr(engine, "zero_stage", None)
    return engine.kind + (f" ZeRO-{stage}" if stage is not None else "")


def _stop_reason(result: FitResult, cfg: TrainConfig, elapsed: float) -> str | None:
    if result.best_epoch and result.epochs - result.best_epoch >= cfg.patience:
        return "patience"
    if result.epochs >= cfg.max_epochs:
        return "max_epochs"
    if cfg.max_minutes is not None and elapsed > 60 * cfg.max_minutes:
        return "time_budget"
    return None


def _resume_state(result: FitResult, best_state: dict[str, Tensor], best: float) -> dict[str, Any]:
    return {
        "best_model": best_state,
        "best": best,
        "best_epoch": result.best_epoch,
        "epoch": result.epochs,
        "history": [asdict(h) for h in result.history],
    }
