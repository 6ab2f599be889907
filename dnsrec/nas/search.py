"""Bilevel DNS-Rec search (paper §2.6.3, Eq. 14), first order, resumable at epoch ends.

Every training batch: one weight step (supernet weights and gates, CE: of the q-mixture of the exits under
the controllers' widths; of every exit with `search.weight_exits=each`, of one width drawn uniformly with
`search.weight_widths=uniform`). Every f batches: one
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

The epochs, the decision epoch's bookkeeping, `search.pt` and resuming from it are the loop training
shares (`dnsrec.train.epochs`); what is the search's own is `_Search`, its resumable state `SearchState`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

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
from dnsrec.train.checkpoint import ConfigStamp, load_checkpoint, load_model_state
from dnsrec.train.device import Placement
from dnsrec.train.engine import Engine, LossFn, make_engine, split_step
from dnsrec.train.epochs import (
    SELECTION_METRIC,
    EpochLoop,
    EpochPlan,
    EpochState,
    EpochTask,
    EpochTotals,
    ResumeFiles,
    stop_if_diverged,
)
from dnsrec.train.loop import TrainingSamples, positions_loss
from dnsrec.train.loss import DEFAULT_CHUNK_ELEMENTS

CHECKPOINT = "search.pt"


def candidate_flops(space: SearchSpace) -> torch.Tensor:
    """FLOPs of one layer of each candidate as a compact `narrow` layer (docs/method.md definition)."""
    return torch.tensor(
        [
            float(layer_flops(space.max_len, h, h, inner, space.head_dim, space.gate_layers, space.attention))
            for h, inner in zip(space.hidden_widths, space.inner_widths, strict=True)
        ]
    )


def unpruned_layers_flops(space: SearchSpace) -> float:
    """FLOPs of the un-pruned supernet's layers, L F_max: what `search.max_flops` is a fraction of."""
    return space.n_layers * float(candidate_flops(space).max())


def load_decision(run_dir: Path, space: SearchSpace) -> tuple[Supernet, dict[str, Any]]:
    """A finished search's supernet (eval mode) holding the weights of its decision epoch, and that epoch's
    trajectory entry (alpha, beta, p, q, tau, L_t, ...), read from `run_dir`'s search checkpoint; where the
    analysis scripts (benchmarks/controller_gradients.py, benchmarks/subnet_probe.py) start."""
    ckpt = run_dir / CHECKPOINT
    saved = load_checkpoint(ckpt)
    state = saved["state"]
    supernet = Supernet(space).eval()
    load_model_state(supernet, saved["best_supernet"], ckpt)
    return supernet, state["trajectory"][state["best_epoch"] - 1]


@dataclass
class SearchOutcome:
    architecture: Architecture
    best_weights: dict[str, Tensor]  # the supernet at the best epoch: the weights retraining starts from
    best_epoch: int
    steps: int
    seconds: float
    trajectory: list[dict[str, Any]] = field(default_factory=list)


def supernet_loss(placement: Placement, ce_chunk: int = DEFAULT_CHUNK_ELEMENTS, exits: str = "mixture") -> LossFn:
    """The weight-step loss as an engine's loss function: (supernet, inputs, targets, p, q, denominator=)
    -> CE at every target position of a window batch, summed and divided by `denominator`. `exits`
    (`search.weight_exits`): "mixture" scores Y = sum_l q_l T^(l) (Eq. 10); "each" scores every exit T^(l) as
    its own model and takes the mean of the L losses, whatever q is."""

    def loss(
        supernet: Supernet, inputs: Tensor, targets: Tensor, p: Tensor, q: Tensor, *, denominator: float
    ) -> Tensor:
        with placement.autocast():
            hidden = supernet.exits(inputs, p) if exits == "each" else [supernet(inputs, p, q)]  # each (B, N, d)
        per_exit = denominator * len(hidden)
        return cast(
            Tensor,
            sum(positions_loss(h, supernet.output_weight, targets, placement, per_exit, ce_chunk) for h in hidden),
        )

    return loss


def uniform_widths(controllers: Controllers, generator: torch.Generator | None = None) -> Tensor:
    """A one-hot p (L, m) of widths drawn uniformly (`search.weight_widths=uniform`): one draw for every layer
    under shared alpha, one per layer under per-layer alpha, whatever the controllers' p says."""
    rows, m = controllers.alpha.shape
    drawn = torch.randint(m, (rows,), generator=generator, device=controllers.alpha.device)
    return torch.nn.functional.one_hot(drawn, m).to(controllers.alpha.dtype).expand(controllers.n_layers, -1)


def weight_step(
    engine: Engine,
    controllers: Controllers,
    idx: np.ndarray,
    counts: np.ndarray,
    batch_of: Callable[[np.ndarray], tuple[Tensor, Tensor]],
    step: int,
    generator: torch.Generator | None = None,
    widths: str = "mixture",
) -> float:
    """One engine step on the supernet weights over the global batch `idx` (`batch_of(part)` gives a
    part's window inputs and targets); the relaxed architecture is a constant (no gradient to alpha/beta).
    `widths` (`search.weight_widths`): "mixture" trains the controllers' p, "uniform" one width drawn
    uniformly from `generator` (the same on every rank). Returns the step's mean CE."""
    with torch.no_grad():
        p, q = controllers(step, generator=generator)
        if widths == "uniform":
            p = uniform_widths(controllers, generator)
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
    log = distributed.main_only(log)
    supernet.to(placement.device)
    controllers.to(placement.device)
    engine = make_engine(
        supernet,
        supernet_loss(placement, train.ce_chunk, cfg.weight_exits),
        train,
        placement,
        batch=cfg.batch,
        weight_decay=cfg.weight_decay,
    )
    distributed.broadcast_module_(controllers)
    samples = TrainingSamples(data, "window", placement.device, train.window_overlap)

    # The temperature is a pure function of cfg, the data and the step, so a resumed search gets the same.
    per_epoch = len(samples.steps(cfg.batch, np.random.default_rng([train.seed, 1]), train.bucket))
    hold = cfg.warmup_epochs * per_epoch  # tau stays at 1 while only the weights train
    arch_steps = (cfg.epochs - cfg.warmup_epochs) * per_epoch
    if cfg.tau_schedule == "search":
        controllers.schedule = TemperatureSchedule.over_search(arch_steps, cfg.tau_final, hold)
    else:
        controllers.schedule = dataclasses.replace(controllers.schedule, hold=hold)
    # The architecture lr's own fall (search.arch_lr_final): the same linear shape over the same steps as tau's.
    arch_lr_scale = TemperatureSchedule.over_search(arch_steps, cfg.arch_lr_final, hold)
    depth_from = hold + int(cfg.depth_hold * arch_steps)  # beta moves only after this weight step

    task = _Search(
        engine, controllers, supernet.space, samples, evaluator, placement, cfg, train, arch_lr_scale, depth_from
    )
    files = ResumeFiles.under(run_dir, CHECKPOINT, "search", stamp)
    epochs = EpochLoop(
        task, engine, samples, EpochPlan(train.seed, cfg.batch, train.bucket, train.progress), files, log
    )
    epochs.resume()
    epochs.run()

    with engine.weights() as net:
        if net is not supernet:  # DeepSpeed trained a copy: hand the final weights back
            supernet.load_state_dict(net.state_dict())
    state = task.state
    best = state.trajectory[state.best_epoch - 1]
    arch = derive_architecture(supernet.space, best.candidates, best.depth)
    trajectory = [dataclasses.asdict(e) for e in state.trajectory]
    return SearchOutcome(arch, epochs.best_weights, state.best_epoch, state.step, state.seconds, trajectory)


@dataclass
class SearchEpoch:
    """One epoch of the search's trajectory, at its end."""

    epoch: int
    loss: float  # mean weight-step CE over the epoch's targets
    tau: float
    alpha: list[list[float]]  # (1, m) shared over layers
    beta: list[float]  # (L,)
    p: list[list[float]]  # the deterministic relaxation evaluated: (L, m)
    q: list[float]  # (L,)
    expected_flops: float
    l_t: int  # the depth the last architecture step took as L_t
    candidates: list[int]  # argmax alpha per layer
    depth: int  # argmax beta + 1
    valid: dict[str, float]
    seconds: float


@dataclass
class SearchState(EpochState):
    """The search's resumable state: the loop's plus the weight steps taken and the trajectory. Saved in
    `search.pt` as a plain dict (`to_dict`), read back by `from_dict`."""

    step: int = 0  # weight steps taken: the temperature, the architecture batches and arch_every count them
    trajectory: list[SearchEpoch] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(e.seconds for e in self.trajectory)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(saved: dict[str, Any]) -> SearchState:
        trajectory = [SearchEpoch(**e) for e in saved["trajectory"]]
        return SearchState(
            int(saved["epoch"]), float(saved["best"]), int(saved["best_epoch"]), int(saved["step"]), trajectory
        )


class _Search(EpochTask[SearchState]):
    """The bilevel search's own part of the epoch loop: a weight step per batch, an architecture step every
    `arch_every` weight steps after the warm-up, the soft mixture evaluated, the decision epoch chosen
    among the epochs after the warm-up and the depth hold."""

    name, label, loss_name = "search", "search epoch", "the search's weight-step loss"

    def __init__(
        self,
        engine: Engine,
        controllers: Controllers,
        space: SearchSpace,
        samples: TrainingSamples,
        evaluator: Evaluator,
        placement: Placement,
        cfg: SearchConfig,
        train: TrainConfig,
        arch_lr_scale: TemperatureSchedule,
        depth_from: int = 0,
    ) -> None:
        self.engine, self.controllers, self.samples, self.placement, self.cfg = (
            engine, controllers, samples, placement, cfg,
        )  # fmt: skip
        self.arch_lr_scale, self.depth_from = arch_lr_scale, depth_from
        self.evaluator, self.lr, self.state = evaluator, train.lr, SearchState()
        self.a_opt = torch.optim.Adam(controllers.parameters(), lr=cfg.arch_lr, weight_decay=cfg.arch_weight_decay)
        self.arch_batches = ArchBatches(evaluator, cfg.arch_batch_size or cfg.batch, train.seed, placement.device)
        self.flops = candidate_flops(space).to(placement.device)
        self.gumbel = torch.Generator(device=placement.device).manual_seed(train.seed)  # the same on every rank
        self.tau_at = controllers.schedule
        self.l_t = 0  # L_t of the latest architecture step (at an epoch's start: argmax beta + 1)
        self.p, self.q = torch.empty(0), torch.empty(0)  # the relaxation the latest evaluation scored

    def stop_reason(self, elapsed: float) -> str | None:
        return "epochs" if self.state.epoch >= self.cfg.epochs else None

    def begin_epoch(self, epoch: int) -> None:
        self.controllers.begin_epoch(epoch)  # the search method's epoch hook (RecNAS prunes: dnsrec.nas.methods)
        self.l_t = self.controllers.argmax_depth()

    def step(self, idx: np.ndarray) -> float:
        state, samples = self.state, self.samples
        loss = weight_step(
            self.engine,
            self.controllers,
            idx,
            samples.counts,
            samples.get,
            state.step,
            self.gumbel,
            self.cfg.weight_widths,
        )
        state.step += 1
        return loss

    def where(self, epoch: int) -> str:
        return f"search epoch {epoch}, step {self.state.step}"

    def after_step(self, epoch: int, idx: np.ndarray, targets: int) -> None:
        """The architecture step, every `arch_every` weight steps once the warm-up is over."""
        cfg, step, engine = self.cfg, self.state.step, self.engine
        if step % cfg.arch_every != 0 or epoch <= cfg.warmup_epochs:
            return
        k = step // cfg.arch_every - 1  # architecture steps taken before this one
        if cfg.arch_batch == "valid":
            total = self.arch_batches.batch
            share = _my_share(total, engine) if engine.world_size > 1 else None
            batch = self.arch_batches.get(k, share)
        else:  # the same training batch: its windows, scored at every target position
            mine = np.concatenate(engine.my_parts(idx, self.samples.counts))
            batch = ArchBatch.windows(*self.samples.get(mine)) if len(mine) else ArchBatch.empty(self.placement.device)
            total = targets
        # The lr is a pure function of the step, like tau: resumes see the same.
        scale = (self.tau_at(step) if cfg.arch_lr_follows_tau else 1.0) * self.arch_lr_scale(step)
        for group in self.a_opt.param_groups:
            group["lr"] = cfg.arch_lr * scale
        with engine.weights() as net:
            _, self.l_t = arch_step(
                cast(Supernet, net),
                self.controllers,
                self.a_opt,
                batch,
                step,
                cfg.lam,
                self.flops,
                self.placement,
                self.gumbel,
                denominator=total,
                resource=engine.rank == 0,
                move_depth=step > self.depth_from,
                part_positions=cfg.arch_part,
                exits=cfg.arch_exits,
            )
        # alpha and beta are equal on every rank (summed gradients); a non-finite architecture loss on any
        # rank makes them non-finite too, so this one check stops every rank.
        worst = float(torch.stack([p.detach().abs().max() for p in self.controllers.parameters()]).max())
        hint = f"lower search.arch_lr, now {cfg.arch_lr:g}, or search.lam, now {cfg.lam:g}"
        stop_if_diverged(worst, "the largest architecture weight |alpha|, |beta|", self.where(epoch), hint)

    def bar_fields(self, targets: int, seconds: float) -> dict[str, float]:
        return {"tau": self.tau_at(self.state.step)}

    def evaluate(self) -> dict[str, float]:
        """The deterministic relaxation at the current step (the soft mixture; the argmax path under the `hard`
        relaxation) on the validation split."""
        with torch.no_grad():
            p, q = self.controllers(self.state.step, noise=False)
            self.p, self.q = self.controllers.probabilities(self.state.step)  # recorded in the trajectory
        placement = self.placement
        with self.engine.weights() as net:

            def score(seqs: Tensor, lengths: Tensor) -> Tensor:
                with placement.autocast():
                    return net.score(seqs, lengths, p, q)  # type: ignore[no-any-return, operator]

            return self.evaluator.evaluate(score, "valid")

    def record(self, t: EpochTotals) -> None:
        candidates, depth = self.controllers.decision()
        c, p, q = self.controllers, self.p, self.q
        self.state.trajectory.append(
            SearchEpoch(
                epoch=t.epoch,
                loss=t.loss,
                tau=self.tau_at(self.state.step),
                alpha=c.alpha.detach().cpu().tolist(),
                beta=c.beta.detach().cpu().tolist(),
                p=p.cpu().tolist(),
                q=q.cpu().tolist(),
                expected_flops=float(expected_flops(p, q, self.flops)),
                l_t=self.l_t,
                candidates=candidates,
                depth=depth,
                valid=t.valid,
                seconds=t.seconds,
            )
        )

    def selectable(self, epoch: int) -> bool:
        # A warm-up epoch's alpha and beta were never trained; an epoch that ends before an architecture step
        # has moved the depth (inside the depth hold, or before the first step `arch_every` allows) has a
        # uniform q, whose argmax (depth 1) would be a tie-break, not a decision. Called at the epoch's end:
        # some multiple of arch_every must lie in (depth_from, step].
        every = self.cfg.arch_every
        return epoch > self.cfg.warmup_epochs and self.state.step // every > self.depth_from // every

    def nothing_selectable(self) -> str:
        cfg, steps = self.cfg, self.state.step
        return (
            f"no search epoch ended after an architecture step that moved the depth ({cfg.epochs} epochs, "
            f"{steps} weight steps, one architecture step every search.arch_every={cfg.arch_every}, the depth "
            f"free only after weight step {self.depth_from}: search.warmup={cfg.warmup:g}, "
            f"search.depth_hold={cfg.depth_hold:g}), so there is no decision to take; raise search.epochs or "
            f"lower search.arch_every, search.warmup or search.depth_hold"
        )

    def epoch_line(self) -> str:
        e = self.state.trajectory[-1]
        return (
            f"search epoch {e.epoch}: loss {e.loss:.4f}, valid {SELECTION_METRIC} {e.valid[SELECTION_METRIC]:.4f}, "
            f"E[FLOPs] {e.expected_flops / 1e6:.2f}M, candidates {e.candidates}, depth {e.depth}, "
            f"tau {e.tau:.3f}, {e.seconds:.1f}s"
        )

    def resume_entries(self, engine_entries: dict[str, Any], best_weights: dict[str, Tensor]) -> dict[str, Any]:
        return {
            "weights": engine_entries,
            "best_supernet": best_weights,
            "controllers": self.controllers.state_dict(),
            "a_opt": self.a_opt.state_dict(),
            "gumbel_rng": self.gumbel.get_state(),
            "state": self.state.to_dict(),
        }

    def restore(self, saved: dict[str, Any], source: Path) -> tuple[dict[str, Any], dict[str, Tensor]]:
        weights = saved.get("weights") or {"model": saved["supernet"], "optimizer": saved["w_opt"]}  # old files
        load_model_state(self.controllers, saved["controllers"], source)
        self.a_opt.load_state_dict(saved["a_opt"])
        self.gumbel.set_state(saved["gumbel_rng"])
        self.state = SearchState.from_dict(saved["state"])
        return weights, saved["best_supernet"]


def _my_share(n_rows: int, engine: Engine) -> np.ndarray:
    """This rank's rows of an architecture batch of `n_rows` sequences (contiguous, about equal)."""
    rows = np.arange(n_rows)
    return split_step(rows, np.ones(n_rows, dtype=np.int64), engine.world_size)[engine.rank]
