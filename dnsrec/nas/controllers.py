"""Bilevel controllers (paper §2.4, §2.6.1): transformer controller alpha and depth controller beta.

They live in their own module with their own optimizer and are passed to the supernet as ARGUMENTS
(p, q), as DARTS does — no hidden state inside the supernet. The temperature is a pure function of the
weight-update step (the published code decrements it inside forward(), evaluation included).

`Controllers` is DNS-Rec's. The NAS baselines over the same supernet (DARTS, ProxylessNAS, RecNAS) are
subclasses in `dnsrec.nas.methods` that override what their method does differently: the relaxation
(`forward`), the resource term (`resource_term`), the decision, and an epoch hook (`begin_epoch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dnsrec.config import RELAXATIONS
from dnsrec.nas.decision import cheapest, log_probabilities, most_probable_within
from dnsrec.nas.flops import expected_flops


def temperature(step: int, start: float = 1.0, decay: float = 5e-5, floor: float = 0.01) -> float:
    """tau = max(0.01, 1 - 5e-5 t), t = number of weight-update steps so far (docs/method.md)."""
    return max(floor, start - decay * step)


@dataclass(frozen=True)
class TemperatureSchedule:
    """tau as a pure function of the weight-update step: max(floor, start - decay * t).

    The published schedule (decay 5e-5 per step) is tied to the dataset's size: ML-1M's ~1,000 steps per
    epoch take tau to 0.5 in 10 epochs, ML-100K's ~95 only to 0.95. `over_search` spreads the same fall
    (1 -> floor) over the whole search instead, so every dataset ends the search at the same sharpness.
    The search also uses `over_search` for the architecture lr's own fall (`search.arch_lr_final`): the same
    linear shape over the same steps.
    """

    start: float = 1.0
    decay: float = 5e-5
    floor: float = 0.01
    hold: int = 0  # steps at `start` before the fall begins (a warm-up of weight steps only)

    @staticmethod
    def over_search(total_steps: int, final: float, hold: int = 0) -> TemperatureSchedule:
        return TemperatureSchedule(1.0, (1.0 - final) / max(total_steps, 1), final, hold)

    def __call__(self, step: int) -> float:
        return temperature(max(0, step - self.hold), self.start, self.decay, self.floor)


def flops_span(flops: Tensor) -> Tensor:
    """F_max - F_min of ONE layer's candidates (`flops` (m,) or (L, m): the widest layer's range), the unit of
    the resource terms; with one candidate per layer nothing is traded and the layer's own cost is the unit."""
    span = (flops.amax(dim=-1) - flops.amin(dim=-1)).max()
    return span if span > 0 else flops.max()


def resource_loss(p: Tensor, q: Tensor, flops: Tensor, l_t: int, n_layers: int) -> Tensor:
    """L_RC of Eq. 12 as the published code computes it:

        f_i = F_i / (F_max - F_min),  L_RC = (L_t / L) * sum_j q_j * sum_{l<=j} sum_i p[l, i] f_i

    with F_max, F_min the largest and smallest cost of ONE layer's candidates (`flops_span`). (Dividing by the
    whole network's range, L * F_max - F_min, makes lambda about L + 1 times weaker than the paper's.)
    `flops` is (m,) or (L, m); for layer-dependent costs the widest layer's range is the normaliser.
    """
    return (l_t / n_layers) * expected_flops(p, q, flops) / flops_span(flops)


def relax(logits: Tensor, tau: float, gumbel: bool, generator: torch.Generator | None = None) -> Tensor:
    """softmax(logits / tau) (the published code's default) or Gumbel-softmax (paper Eq. 9), over the last dim."""
    if gumbel:
        u = torch.rand(logits.shape, generator=generator, device=logits.device).clamp_(1e-10, 1 - 1e-10)
        logits = logits - torch.log(-torch.log(u))
    return F.softmax(logits / tau, dim=-1)


def straight_through_one_hot(probs: Tensor, index: Tensor) -> Tensor:
    """`probs`' shape, 1 at `index` (one per row), 0 elsewhere, with the straight-through gradient of `probs`:
    the value is exactly the one-hot path (probs - probs.detach() is exactly 0), the gradient dL/dg flows into
    probs, so dL/dlogit_i = sum_j dL/dg_j dprobs_j/dlogit_i (ProxylessNAS's binarised gradient, GDAS's)."""
    hard = torch.zeros_like(probs).scatter_(-1, index[..., None], 1.0)
    return hard + (probs - probs.detach())


class Controllers(nn.Module):
    """alpha: (1 or L, m) candidate logits, shared across layers by default; beta: (L,) exit logits."""

    def __init__(
        self,
        n_layers: int,
        m: int,
        per_layer: bool = False,
        relaxation: str = "softmax",
        schedule: TemperatureSchedule = TemperatureSchedule(),
    ) -> None:
        super().__init__()
        if relaxation not in RELAXATIONS:
            raise ValueError(f"relaxation must be one of {RELAXATIONS}, got {relaxation!r}")
        self.n_layers, self.relaxation, self.schedule = n_layers, relaxation, schedule
        self.alpha = nn.Parameter(torch.zeros(n_layers if per_layer else 1, m))
        self.beta = nn.Parameter(torch.zeros(n_layers))
        self.flops_limit: tuple[list[float], float] | None = None  # (one layer's cost per candidate, bound)

    def limit_flops(self, layer_costs: list[float], bound: float) -> None:
        """Bound the decision: from now on it is the most probable architecture whose layers cost at most
        `bound` (`dnsrec.nas.decision`), not the plain argmax. A second bound keeps the tighter of the two."""
        if self.flops_limit is not None:
            bound = min(bound, self.flops_limit[1])
        self.flops_limit = (list(layer_costs), bound)

    def forward(self, step: int, noise: bool = True, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(p (L, m), q (L,)) at weight-update step `step`; `noise=False` gives what the search evaluates: the
        deterministic softmax, or with the `hard` relaxation the argmax path."""
        tau = self.schedule(step)
        if self.relaxation == "hard":
            return self._sampled_path(tau, noise, generator)
        gumbel = noise and self.relaxation == "gumbel"
        p = relax(self.alpha, tau, gumbel, generator).expand(self.n_layers, -1)
        q = relax(self.beta, tau, gumbel, generator)
        return p, q

    def _sampled_path(self, tau: float, noise: bool, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
        """The `hard` relaxation (GDAS, Dong & Yang 2019, with DNS-Rec's temperature): ONE path, a width and an
        exit depth drawn from softmax(logits / tau) by the Gumbel-max trick (the argmax without noise), as a
        one-hot p and q whose gradient is the Gumbel-softmax's (straight-through). Every weight step then trains
        the drawn subnet as itself: under the softmax mixture the weights co-adapt to the current expected mask,
        and subnets the mixture holds little of score near chance with the weights they would inherit
        (benchmarks/subnet_probe.py), so the CE pulls the controllers toward whatever leads early."""

        def path(logits: Tensor) -> Tensor:
            soft = relax(logits / tau, 1.0, noise, generator)  # softmax(logits / tau + Gumbel noise)
            return straight_through_one_hot(soft, soft.detach().argmax(dim=-1))

        return path(self.alpha).expand(self.n_layers, -1), path(self.beta)

    def probabilities(self, step: int) -> tuple[Tensor, Tensor]:
        """The controllers' distributions at `step` as the trajectory records them (p (L, m), q (L,)): what the
        search evaluates, except where that is one path (the `hard` relaxation here, ProxylessNAS), which
        record the distribution the paths are drawn from (here softmax(logits / tau))."""
        if self.relaxation != "hard":
            return self(step, noise=False)  # type: ignore[no-any-return]
        tau = self.schedule(step)
        return relax(self.alpha, tau, False).expand(self.n_layers, -1), relax(self.beta, tau, False)

    def resource_term(self, p: Tensor, q: Tensor, flops: Tensor, l_t: int) -> Tensor | None:
        """The architecture loss's resource term at the relaxed (p, q), before lambda: DNS-Rec's L_RC (Eq. 12,
        `resource_loss`). A method without one returns None, and its architecture loss is the CE alone."""
        return resource_loss(p, q, flops, l_t, self.n_layers)

    def begin_epoch(self, epoch: int) -> None:
        """Called before search epoch `epoch` (1-based) takes its first step; DNS-Rec does nothing here."""

    def summary(self) -> dict[str, Any]:
        """Keys a method adds to its result's `search` record: the decision's FLOPs bound where it has one."""
        return {} if self.flops_limit is None else {"flops_bound": self.flops_limit[1]}

    def decision(self) -> tuple[list[int], int]:
        """Hard selection (paper Eq. 15): the argmax candidate per layer and the depth argmax(beta) + 1; under
        a FLOPs bound (`limit_flops`) the most probable architecture within it."""
        if self.flops_limit is not None:
            return self.bounded_decision(self.alpha, self.beta)
        candidates = self.alpha.detach().argmax(dim=-1).expand(self.n_layers).tolist()
        return candidates, self.argmax_depth()

    def argmax_depth(self) -> int:
        """argmax(beta) + 1: L_t, the temporary hard selection of the resource term (never bounded)."""
        return int(self.beta.detach().argmax()) + 1

    def bounded_decision(self, alpha: Tensor, beta: Tensor) -> tuple[list[int], int]:
        """The most probable (widths, depth) under softmax(alpha), softmax(beta) whose layers fit the bound;
        where none of nonzero probability does (RecNAS, whose pruning can leave only costly candidates), the
        most probable of the cheapest."""
        assert self.flops_limit is not None
        costs, bound = self.flops_limit
        log_p, log_q = log_probabilities(alpha, beta)
        choice = most_probable_within(log_p, log_q, costs, bound)
        if choice is None:
            choice = most_probable_within(log_p, log_q, costs, cheapest(log_p, log_q, costs))
        assert choice is not None, "some path has nonzero probability"
        return choice
