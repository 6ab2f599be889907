"""Bilevel DNS-Rec search (paper §2.6.3, Eq. 14), first order, resumable at epoch ends.

Every training batch: one weight step (supernet weights and gates, CE). Every f batches: one
architecture step (alpha, beta) on a VALIDATION batch (option: the same training batch, as the published
code does) with loss CE + lambda * L_RC, where L_RC = (L_t / L) * E[FLOPs] / (F_max - F_min) and L_t =
argmax(beta) + 1 is a temporary hard selection refreshed at each architecture step, with no gradient
through it. The two parameter sets have separate optimizers, so a weight step never moves alpha/beta
and an architecture step never moves a weight. After each epoch the soft mixture is evaluated on the
validation split; the decision is argmax alpha, argmax beta at the epoch with the best validation
pop100 NDCG@10. The whole trajectory (alpha, beta, tau, expected FLOPs, metrics) is kept.

Weight steps go through a training engine (`dnsrec.train.engine`: plain torch or DeepSpeed ZeRO); alpha
and beta are tiny and stay outside it (DeepSpeed allows one optimizer per engine), with their gradients
summed over ranks by hand. Architecture steps read the weights as detached constants.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from dnsrec.config import SearchConfig, TrainConfig
from dnsrec.data.sequences import SequenceData
from dnsrec.evaluate import Evaluator
from dnsrec.nas.arch_step import ArchBatch, ArchBatches, arch_step
from dnsrec.nas.architecture import Architecture
from dnsrec.nas.controllers import Controllers, TemperatureSchedule
from dnsrec.nas.derive import derive_architecture
from dnsrec.nas.flops import expected_flops, layer_flops
from dnsrec.nas.space import SearchSpace
from dnsrec.nas.supernet import Supernet
from dnsrec.train import distributed
from dnsrec.train.checkpoint import STAMP_KEY, ConfigStamp, load_checkpoint, load_model_state, save_checkpoint
from dnsrec.train.device import Placement
from dnsrec.train.engine import Engine, LossFn, make_engine, split_step
from dnsrec.train.loop import SELECTION_METRIC, TrainingSamples, stop_if_diverged
from dnsrec.train.loss import DEFAULT_CHUNK_ELEMENTS, item_cross_entropy
from dnsrec.train.progress import Progress

CHECKPOINT = "search.pt"


def candidate_flops(space: SearchSpace) -> torch.Tensor:
    """FLOPs of one layer of each candidate as a compact `narrow` layer (docs/method.md definition)."""
    return torch.tensor(
        [
            float(layer_flops(space.max_len, h, h, inner, space.head_dim, space.gate_layers, space.attention))
            for h, inner in zip(space.hidden_widths, space.inner_widths, strict=True)
        ]
    )


@dataclass
class SearchOutcome:
    architecture: Architecture
    best_weights: dict[str, Tensor]  # the supernet at the best epoch: the weights retraining starts from
    best_epoch: int
    steps: int
    seconds: float
    trajectory: list[dict[str, Any]] = field(default_factory=list)


def supernet_loss(placement: Placement, ce_chunk: int = DEFAULT_CHUNK_ELEMENTS) -> LossFn:
    """The weight-step loss as an engine's loss function: (supernet, inputs, targets, p, q, denominator=)
    -> CE at every target position of a window batch, summed and divided by `denominator`."""

    def loss(
        supernet: Supernet, inputs: Tensor, targets: Tensor, p: Tensor, q: Tensor, *, denominator: float
    ) -> Tensor:
        with placement.autocast():
            hidden = supernet(inputs, p, q)  # (B, N, d)
        mask = targets > 0
        return item_cross_entropy(
            hidden[mask],
            supernet.output_weight,
            targets[mask],
            compute_dtype=placement.compute_dtype,
            denominator=denominator,
            chunk_elements=ce_chunk,
        )

    return loss


def weight_step(
    engine: Engine,
    controllers: Controllers,
    idx: np.ndarray,
    counts: np.ndarray,
    batch_of: Callable[[np.ndarray], tuple[Tensor, Tensor]],
    step: int,
    generator: torch.Generator | None = None,
) -> float:
    """One engine step on the supernet weights over the global batch `idx` (`batch_of(part)` gives a
    part's window inputs and targets); the relaxed architecture is a constant (no gradient to alpha/beta).
    Returns the step's mean CE."""
    with torch.no_grad():
        p, q = controllers(step, generator=generator)
    return engine.train_step(idx, counts, lambda part: (*batch_of(part), p, q))


def search(
    supernet: Supernet,
    controllers: Controllers,
    data: SequenceData,
    evaluator: Evaluator,
    cfg: SearchConfig,
    train: TrainConfig,
    run_dir: Path | None = None,
    log: Callable[[str], None] = print,
    stamp: ConfigStamp | None = None,
) -> SearchOutcome:
    """The bilevel search. Weight steps go through the engine `train.engine`; alpha and beta stay outside
    it with their own Adam. On several ranks every rank calls this with the same arguments: weight steps
    and architecture batches are sharded, the controllers' gradients summed, rank 0's validation metrics
    broadcast, so alpha, beta and the decision are identical on every rank; only rank 0 writes files.
    With a `stamp` (the run's config) `search.pt` carries it and one of another config is refused."""
    placement = Placement.resolve(train.device, train.precision)
    device = placement.device
    log = distributed.main_only(log)
    supernet.to(device)
    controllers.to(device)
    engine = make_engine(
        supernet,
        supernet_loss(placement, train.ce_chunk),
        train,
        placement,
        batch=cfg.batch,
        weight_decay=cfg.weight_decay,
    )
    distributed.broadcast_module_(controllers)
    a_opt = torch.optim.Adam(controllers.parameters(), lr=cfg.arch_lr, weight_decay=cfg.arch_weight_decay)
    samples = TrainingSamples(data, "window", device)
    arch_batches = ArchBatches(evaluator, cfg.arch_batch_size or cfg.batch, train.seed, device)
    flops = candidate_flops(supernet.space).to(device)
    space = supernet.space
    gumbel_gen = torch.Generator(device=device).manual_seed(train.seed)  # the same draws on every rank

    # The temperature is a pure function of cfg, the data and the step, so a resumed search gets the same.
    per_epoch = len(samples.steps(cfg.batch, np.random.default_rng([train.seed, 1]), train.bucket))
    hold = cfg.warmup_epochs * per_epoch  # tau stays at 1 while only the weights train
    if cfg.tau_schedule == "search":
        arch_steps = (cfg.epochs - cfg.warmup_epochs) * per_epoch
        controllers.schedule = TemperatureSchedule.over_search(arch_steps, cfg.tau_final, hold)
    else:
        controllers.schedule = dataclasses.replace(controllers.schedule, hold=hold)
    tau_at = controllers.schedule

    state: dict[str, Any] = {"epoch": 0, "step": 0, "best": -math.inf, "best_epoch": 0, "trajectory": []}
    best_weights = engine.state_dict()
    ckpt = run_dir / CHECKPOINT if run_dir else None
    zero_dir = run_dir / "zero" / "search" if run_dir else None
    if ckpt is not None and zero_dir is not None and distributed.broadcast_object(ckpt.exists()):
        saved = load_checkpoint(ckpt)
        if stamp is not None:
            stamp.check(saved, ckpt)
        weights = saved.get("weights") or {"model": saved["supernet"], "optimizer": saved["w_opt"]}  # old files
        engine.load(zero_dir, weights, ckpt)
        load_model_state(controllers, saved["controllers"], ckpt)
        a_opt.load_state_dict(saved["a_opt"])
        gumbel_gen.set_state(saved["gumbel_rng"])
        state, best_weights = saved["state"], saved["best_supernet"]
        log(f"resuming search from {ckpt} after epoch {state['epoch']}")

    seconds = sum(e["seconds"] for e in state["trajectory"])
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        torch.manual_seed(distributed.epoch_seed(train.seed, epoch, engine.rank))  # dropout masks
        engine.set_training(True)
        steps = samples.steps(cfg.batch, np.random.default_rng([train.seed, epoch]), train.bucket)
        bar = Progress(len(steps), f"search epoch {epoch}", enabled=train.progress and distributed.is_main())
        loss_sum, seen, l_t = 0.0, 0, controllers.decision()[1]
        for idx in steps:
            loss = weight_step(engine, controllers, idx, samples.counts, samples.get, state["step"], gumbel_gen)
            state["step"] += 1
            where = f"search epoch {epoch}, step {state['step']}"
            stop_if_diverged(loss, "the search's weight-step loss", where, f"lower lr, now {train.lr:g}")
            n = int(samples.counts[idx].sum())
            loss_sum, seen = loss_sum + loss * n, seen + n
            if state["step"] % cfg.arch_every == 0 and epoch > cfg.warmup_epochs:
                k = state["step"] // cfg.arch_every - 1  # architecture steps taken before this one
                if cfg.arch_batch == "valid":
                    total = arch_batches.batch
                    share = _my_share(total, engine) if engine.world_size > 1 else None
                    batch = arch_batches.get(k, share)
                else:  # the same training batch: its windows, scored at every target position
                    mine = np.concatenate(engine.my_parts(idx, samples.counts))
                    batch = ArchBatch.windows(*samples.get(mine)) if len(mine) else ArchBatch.empty(device)
                    total = n
                if cfg.arch_lr_follows_tau:  # a pure function of the step, like tau: resumes see the same
                    for group in a_opt.param_groups:
                        group["lr"] = cfg.arch_lr * tau_at(state["step"])
                with engine.weights() as net:
                    _, l_t = arch_step(
                        cast(Supernet, net),
                        controllers,
                        a_opt,
                        batch,
                        state["step"],
                        cfg.lam,
                        flops,
                        placement,
                        gumbel_gen,
                        denominator=total,
                        resource=engine.rank == 0,
                    )
                # alpha and beta are equal on every rank (summed gradients); a non-finite architecture
                # loss on any rank makes them non-finite too, so this one check stops every rank.
                worst = float(torch.stack([p.detach().abs().max() for p in controllers.parameters()]).max())
                hint = f"lower search.arch_lr, now {cfg.arch_lr:g}, or search.lam, now {cfg.lam:g}"
                stop_if_diverged(worst, "the largest architecture weight |alpha|, |beta|", where, hint)
            bar.update(1, loss=loss_sum / max(seen, 1), tau=tau_at(state["step"]))
        bar.close()

        engine.set_training(False)
        with torch.no_grad():
            p, q = controllers(state["step"], noise=False)
        with engine.weights() as net:

            def score(seqs: Tensor, lengths: Tensor, p: Tensor = p, q: Tensor = q, net: nn.Module = net) -> Tensor:
                with placement.autocast():
                    return net.score(seqs, lengths, p, q)  # type: ignore[no-any-return, operator]

            valid = evaluator.evaluate(score, "valid")
        valid = distributed.broadcast_object(valid)  # rank 0's numbers pick the epoch on every rank
        candidates, depth = controllers.decision()
        epoch_seconds = time.perf_counter() - t0
        seconds += epoch_seconds
        entry = {
            "epoch": epoch,
            "loss": loss_sum / max(seen, 1),
            "tau": tau_at(state["step"]),
            "alpha": controllers.alpha.detach().cpu().tolist(),
            "beta": controllers.beta.detach().cpu().tolist(),
            "p": p.cpu().tolist(),
            "q": q.cpu().tolist(),
            "expected_flops": float(expected_flops(p, q, flops)),
            "l_t": l_t,
            "candidates": candidates,
            "depth": depth,
            "valid": valid,
            "seconds": epoch_seconds,
        }
        state["trajectory"].append(entry)
        state["epoch"] = epoch
        if valid[SELECTION_METRIC] > state["best"] and epoch > cfg.warmup_epochs:
            state["best"], state["best_epoch"] = valid[SELECTION_METRIC], epoch
            best_weights = engine.state_dict()
        log(
            f"search epoch {epoch}: loss {entry['loss']:.4f}, valid {SELECTION_METRIC} {valid[SELECTION_METRIC]:.4f}, "
            f"E[FLOPs] {entry['expected_flops'] / 1e6:.2f}M, candidates {candidates}, depth {depth}, "
            f"tau {entry['tau']:.3f}, {epoch_seconds:.1f}s"
        )
        if ckpt is not None and zero_dir is not None:
            tag = f"epoch-{epoch}"
            weights = engine.save(zero_dir, tag)
            if distributed.is_main():
                save_checkpoint(
                    ckpt,
                    {
                        "weights": weights,
                        "best_supernet": best_weights,
                        "controllers": controllers.state_dict(),
                        "a_opt": a_opt.state_dict(),
                        "gumbel_rng": gumbel_gen.get_state(),
                        "state": state,
                        **({STAMP_KEY: stamp.entry()} if stamp is not None else {}),
                    },
                )
                engine.prune(zero_dir, keep=tag)
            distributed.barrier()

    with engine.weights() as net:
        if net is not supernet:  # DeepSpeed trained a copy: hand the final weights back
            supernet.load_state_dict(net.state_dict())
    best = state["trajectory"][state["best_epoch"] - 1]
    arch = derive_architecture(space, best["candidates"], best["depth"])
    return SearchOutcome(arch, best_weights, state["best_epoch"], state["step"], seconds, state["trajectory"])


def _my_share(n_rows: int, engine: Engine) -> np.ndarray:
    """This rank's rows of an architecture batch of `n_rows` sequences (contiguous, about equal)."""
    rows = np.arange(n_rows)
    return split_step(rows, np.ones(n_rows, dtype=np.int64), engine.world_size)[engine.rank]
