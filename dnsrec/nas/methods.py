"""The search methods over the DNS-Rec supernet (`search.method`): DNS-Rec and the paper's NAS baselines (§3.2,
docs/method.md "Baselines"), each in one place.

Every method searches the same supernet (zero-masked width candidates, exit depths) with the same loop
(`dnsrec.nas.search`: a weight step per training batch, an architecture step every `search.arch_every`
batches, the soft or sampled supernet evaluated after each epoch, the decision taken at the epoch with the
best validation pop100 NDCG@10), derives an `Architecture` the same way and retrains it through the same
path, recorded like any run. What differs is how the controllers turn alpha and beta into the (p, q) the
supernet takes, the architecture loss's resource term, the decision and an epoch hook, so each method is a
`Controllers` subclass overriding exactly those (`Controllers` itself is DNS-Rec's):

- dnsrec: p, q = softmax(logits / tau) (or Gumbel-softmax), the same with gradient in architecture steps;
  resource term (L_t / L) E[F] / span; data-aware gates.
- darts: p, q = softmax(logits) in every step; NO resource term (the architecture loss is the CE alone);
  no gates.
- proxyless: ONE sampled path per step (one-hot p, q), binarised path gradients in architecture steps;
  resource term E[F] / span under softmax(logits); evaluated on the most likely path; no gates.
- recnas (a reconstruction): annealed softmax over the candidates still alive; the weakest candidate pruned
  on a schedule; resource term max(0, E[F] - C) / span; the decision selects under FLOPs <= C; no gates.

E[F] is the expected FLOPs of the layers (`dnsrec.nas.flops.expected_flops`), span = F_max - F_min of one
layer's candidates (`flops_span`), so lambda means the same per layer in every method. DARTS and ProxylessNAS
relax at tau = 1 whatever `search.tau_schedule` says (their papers have no temperature). The baselines have no
data-aware gates (the gates are DNS-Rec's contribution; `gates.layers` shapes DNS-Rec's supernet only), but a
baseline's compact model may be retrained with gates (`retrain.gate_layers`).

RecNAS (Peng et al. 2022, "ReCNAS: Resource-Constrained Neural Architecture Search Based on Differentiable
Annealing and Dynamic Pruning", TNNLS) has no public code: `recnas` is a RECONSTRUCTION from the DNS-Rec paper's
description of it (§3.2: annealing, channel pruning, architectures under a given resource constraint) and that
title, labelled so in its result (`RunResult.notes`), the README and the reproduce reports.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dnsrec.config import SEARCH_METHODS, SearchConfig
from dnsrec.errors import ConfigError
from dnsrec.nas.controllers import (
    Controllers,
    TemperatureSchedule,
    flops_span,
    relax,
    resource_loss,
    straight_through_one_hot,
)
from dnsrec.nas.flops import expected_flops
from dnsrec.nas.search import candidate_flops, unpruned_layers_flops
from dnsrec.nas.space import SearchSpace

RECNAS_RECONSTRUCTION = (
    "search.method=recnas is a reconstruction: RecNAS has no public code, so its annealed softmax, progressive "
    "pruning of the weakest candidate and FLOPs-bounded selection are implemented from the DNS-Rec paper's "
    "description of it (dnsrec.nas.methods), not from the authors' code"
)
FIXED_TAU = TemperatureSchedule(start=1.0, decay=0.0, floor=1.0)  # tau = 1 at every step


class _FixedTemperature(Controllers):
    """Relaxes at tau = 1: the search's temperature schedule, assigned to `schedule`, is ignored, and the
    schedule read back (what the trajectory records as tau) is the constant 1."""

    @property  # type: ignore[override]
    def schedule(self) -> TemperatureSchedule:
        return FIXED_TAU

    @schedule.setter
    def schedule(self, value: TemperatureSchedule) -> None:
        pass


class DARTSControllers(_FixedTemperature):
    """DARTS (Liu et al. 2019): the softmax mixture p = softmax(alpha), q = softmax(beta) in every step, and an
    architecture loss of CE alone (no resource term, so nothing pulls toward a small network)."""

    def forward(self, step: int, noise: bool = True, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        return F.softmax(self.alpha, dim=-1).expand(self.n_layers, -1), F.softmax(self.beta, dim=-1)

    def resource_term(self, p: Tensor, q: Tensor, flops: Tensor, l_t: int) -> Tensor | None:
        return None


class ProxylessControllers(_FixedTemperature):
    """ProxylessNAS (Cai et al. 2019) on the supernet: binarised paths. Each weight step samples ONE path, a
    width candidate (per layer with per-layer alpha) from softmax(alpha) and an exit depth from softmax(beta),
    and trains that path alone (p and q one-hot). Each architecture step samples a path again and updates
    alpha, beta with the binarised gradient (`straight_through_one_hot`); the zero-masked supernet gives dL/dg_j of
    every candidate j from the one sampled forward, since the expected mask is linear in g. The resource term
    is the expected FLOPs under softmax(alpha), softmax(beta) (the paper's expected latency), per layer's span.
    Evaluation during the search runs the most likely path (argmax), the network the search would derive."""

    def forward(self, step: int, noise: bool = True, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        p, q = F.softmax(self.alpha, dim=-1), F.softmax(self.beta, dim=-1)[None]  # (1 or L, m), (1, L)
        if noise:
            i = torch.multinomial(p.detach(), 1, generator=generator)[:, 0]
            j = torch.multinomial(q.detach(), 1, generator=generator)[:, 0]
        else:
            i, j = p.detach().argmax(dim=-1), q.detach().argmax(dim=-1)
        return straight_through_one_hot(p, i).expand(self.n_layers, -1), straight_through_one_hot(q, j)[0]

    def probabilities(self, step: int) -> tuple[Tensor, Tensor]:
        """softmax(alpha), softmax(beta): the distribution the paths are drawn from (what the resource term
        prices), not the one-hot path evaluated, so a trajectory shows how far the controllers have moved."""
        return F.softmax(self.alpha, dim=-1).expand(self.n_layers, -1), F.softmax(self.beta, dim=-1)

    def resource_term(self, p: Tensor, q: Tensor, flops: Tensor, l_t: int) -> Tensor | None:
        soft_p = F.softmax(self.alpha, dim=-1).expand(self.n_layers, -1)
        soft_q = F.softmax(self.beta, dim=-1)
        return resource_loss(soft_p, soft_q, flops, self.n_layers, self.n_layers)  # L_t / L = 1: no DNS-Rec scaling


def recnas_pruned(epoch: int, n: int, epochs: int, warmup_epochs: int) -> int:
    """How many of a controller's n candidates RecNAS has pruned when search epoch `epoch` (1-based) begins:
    n - 1 in all, the k-th after architecture epoch ceil(k A / n) of the A = epochs - warmup_epochs, so the
    prunes are spread evenly and the last A / n epochs or so search one candidate."""
    arch_epochs, done = epochs - warmup_epochs, epoch - 1 - warmup_epochs
    return sum(1 for k in range(1, n) if -(-k * arch_epochs // n) <= done)


MAX_RECNAS_COMBINATIONS = 100_000  # per-layer choices enumerated by RecNAS's bounded selection


class RecNASControllers(Controllers):
    """RecNAS (a RECONSTRUCTION, see the module docstring) on the supernet:
    - annealed softmax: p = softmax(alpha / tau) with DNS-Rec's temperature schedule, over the candidates
      still alive;
    - progressive pruning: before each epoch the weakest alive candidate (lowest logit) of alpha (per row) and
      of beta is pruned for good on the schedule `recnas_pruned`, until one of each is left; a pruned
      candidate's p is exactly 0 from then on (`alive_alpha`, `alive_beta`: buffers, saved with the
      controllers, so a resumed search keeps them);
    - FLOPs-bounded channel selection: the resource term is lambda max(0, E[F] - C) / span, C = the budget
      (`search.flops_budget`) times the un-pruned supernet's layers' FLOPs L F_max, and the decision is the
      most probable alive (widths, depth) whose layers' FLOPs are at most C (the cheapest alive one if none is).
    Pruning the weakest never changes an argmax, so the bound alone makes the decision differ from argmax.
    """

    alive_alpha: Tensor
    alive_beta: Tensor
    flops: Tensor

    def __init__(
        self,
        n_layers: int,
        m: int,
        per_layer: bool,
        relaxation: str,
        flops: Tensor,
        budget: float,
        epochs: int,
        warmup_epochs: int,
    ) -> None:
        super().__init__(n_layers, m, per_layer, relaxation)
        if per_layer and m**n_layers > MAX_RECNAS_COMBINATIONS:
            raise ConfigError(
                f"config key 'search.per_layer_alpha': recnas enumerates the {m}^{n_layers} per-layer choices to "
                f"select under the FLOPs bound, more than {MAX_RECNAS_COMBINATIONS:,}; use shared alpha"
            )
        self.budget, self.epochs, self.warmup_epochs = budget, epochs, warmup_epochs
        self.register_buffer("alive_alpha", torch.ones(self.alpha.shape, dtype=torch.bool))
        self.register_buffer("alive_beta", torch.ones(self.beta.shape, dtype=torch.bool))
        self.register_buffer("flops", flops.detach().double().clone(), persistent=False)  # (m,) one layer each
        self.limit_flops(self.flops.tolist(), self.bound)

    @property
    def bound(self) -> float:
        """C: the budget's FLOPs of the layers."""
        return self.budget * self.n_layers * float(self.flops.max())

    def forward(self, step: int, noise: bool = True, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        tau = self.schedule(step)
        gumbel = noise and self.relaxation == "gumbel"
        alpha = self.alpha.masked_fill(~self.alive_alpha, -math.inf)
        beta = self._alive_beta()
        return relax(alpha, tau, gumbel, generator).expand(self.n_layers, -1), relax(beta, tau, gumbel, generator)

    def resource_term(self, p: Tensor, q: Tensor, flops: Tensor, l_t: int) -> Tensor | None:
        return F.relu(expected_flops(p, q, flops) - self.bound) / flops_span(flops)

    def begin_epoch(self, epoch: int) -> None:
        for logits, alive in (*zip(self.alpha, self.alive_alpha, strict=True), (self.beta, self.alive_beta)):
            target = recnas_pruned(epoch, len(alive), self.epochs, self.warmup_epochs)
            while int((~alive).sum()) < target:
                weakest = int(logits.detach().masked_fill(~alive, math.inf).argmin())
                alive[weakest] = False

    def decision(self) -> tuple[list[int], int]:
        return self.bounded_decision(self.alpha.masked_fill(~self.alive_alpha, -math.inf), self._alive_beta())

    def argmax_depth(self) -> int:
        return int(self._alive_beta().detach().argmax()) + 1

    def _alive_beta(self) -> Tensor:
        return self.beta.masked_fill(~self.alive_beta, -math.inf)

    def summary(self) -> dict[str, Any]:
        return {
            **super().summary(),  # flops_bound: the tighter of C and search.max_flops's
            "alive_candidates": self.alive_alpha.tolist(),
            "alive_depths": self.alive_beta.tolist(),
        }


@dataclass(frozen=True)
class SearchMethod:
    """One value of `search.method`: its supernet (gates or not), its controllers and how its result is labelled."""

    name: str
    label: str  # the paper's name for it
    gates: bool  # data-aware gates in the supernet (DNS-Rec's own)
    reconstruction: str = ""  # why the method is a reconstruction ("" when it follows its paper)

    def space(self, space: SearchSpace) -> SearchSpace:
        """The supernet's space: a baseline's has no data-aware gates."""
        return space if self.gates else dataclasses.replace(space, gate_layers=0)

    def controllers(self, space: SearchSpace, cfg: SearchConfig) -> Controllers:
        c = self._controllers(space, cfg)
        if cfg.max_flops is not None:
            costs = candidate_flops(space).tolist()
            full = unpruned_layers_flops(space)
            bound = cfg.max_flops * full
            if min(costs) > bound:
                raise ConfigError(
                    f"config key 'search.max_flops': {cfg.max_flops:g} of the un-pruned supernet's "
                    f"{full / 1e6:.2f}M FLOPs is {bound / 1e6:.2f}M, less than the smallest "
                    f"architecture's {min(costs) / 1e6:.2f}M (one layer of the narrowest width); expected at "
                    f"least {min(costs) / full:.4f}"
                )
            c.limit_flops(costs, bound)
        return c

    def _controllers(self, space: SearchSpace, cfg: SearchConfig) -> Controllers:
        args = (space.n_layers, space.m, cfg.per_layer_alpha)
        if self.name == "darts":
            return DARTSControllers(*args)
        if self.name == "proxyless":
            return ProxylessControllers(*args)
        if self.name == "recnas":
            flops = candidate_flops(space)
            return RecNASControllers(*args, cfg.relax, flops, cfg.flops_budget, cfg.epochs, cfg.warmup_epochs)
        return Controllers(*args, cfg.relax)

    def notes(self) -> list[str]:
        """What a result of this method must say about it (`RunResult.notes`)."""
        return [self.reconstruction] if self.reconstruction else []


METHODS = {
    m.name: m
    for m in (
        SearchMethod("dnsrec", "DNS-Rec", gates=True),
        SearchMethod("darts", "DARTS", gates=False),
        SearchMethod("proxyless", "ProxylessNAS", gates=False),
        SearchMethod("recnas", "RecNAS (reconstruction)", gates=False, reconstruction=RECNAS_RECONSTRUCTION),
    )
}
assert tuple(METHODS) == SEARCH_METHODS


def search_method(name: str) -> SearchMethod:
    if name not in METHODS:
        raise ConfigError(f"config key 'search.method': expected one of {', '.join(METHODS)}, got {name!r}")
    return METHODS[name]
