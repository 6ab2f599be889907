"""The search's decision under a FLOPs bound: the most probable architecture whose layers fit.

Without a bound the decision is argmax alpha, argmax beta (paper Eq. 15, `Controllers.decision`). With one
(`search.max_flops` for any method, RecNAS's own `search.flops_budget`) it is the (widths, depth) of highest
probability p(widths) q(depth) among those whose layers' FLOPs are at most the bound. Probabilities, not raw
logits: with alpha shared over layers a width is ONE choice, counted once whatever the depth (summing its logit
once per kept layer would favour depth wherever that logit is positive), and with per-layer alpha each layer's
logits are normalised on their own, so paths of different depths compare on the same scale. Plain Python over
the enumeration: 3 widths x 4 depths by default, m^L paths with per-layer alpha (bounded by the caller).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import torch.nn.functional as F
from torch import Tensor


def paths(log_p: Sequence[Sequence[float]], n_layers: int) -> Iterator[tuple[tuple[int, ...], float]]:
    """Every (kept candidates, log-probability of the widths) over depths 1..n_layers, depth = len(kept).

    log_p: one row (alpha shared over layers: the width is one choice) or one row per layer."""
    m = len(log_p[0])
    for depth in range(1, n_layers + 1):
        if len(log_p) == 1:
            for i in range(m):
                yield (i,) * depth, log_p[0][i]
        else:
            for kept in itertools.product(range(m), repeat=depth):
                yield kept, sum(log_p[layer][i] for layer, i in enumerate(kept))


def scored_paths(log_p: Sequence[Sequence[float]], log_q: Sequence[float]) -> Iterator[tuple[tuple[int, ...], float]]:
    """Every path of nonzero probability with its log-probability log p(widths) + log q(depth)."""
    for kept, log_widths in paths(log_p, len(log_q)):
        score = log_widths + log_q[len(kept) - 1]
        if score > -math.inf:
            yield kept, score


def log_probabilities(alpha: Tensor, beta: Tensor) -> tuple[list[list[float]], list[float]]:
    """log softmax of alpha's rows and of beta, in float64; a logit of -inf (a candidate RecNAS pruned) gets
    probability 0. At tau = 1: with shared alpha the order of p_i q_d is the same at every temperature, and
    from the logits a probability too small for float32 stays comparable instead of underflowing to log 0."""
    a = F.log_softmax(alpha.detach().double(), dim=-1)
    b = F.log_softmax(beta.detach().double(), dim=-1)
    return a.tolist(), b.tolist()


def most_probable_within(
    log_p: Sequence[Sequence[float]],
    log_q: Sequence[float],
    layer_costs: Sequence[float],
    bound: float,
) -> tuple[list[int], int] | None:
    """The most probable (candidates per layer, depth) whose layers cost at most `bound` (the sum of
    `layer_costs[i]` over the kept layers), or None when no path of nonzero probability fits. Candidates of
    the layers past the depth (never built) are the first kept one with shared alpha, else each layer's argmax,
    so the result has one entry per layer like `Controllers.decision`. Ties go to the shallower, then to the
    lower candidate index (what argmax does)."""
    n_layers = len(log_q)
    best: tuple[float, tuple[int, ...]] | None = None
    for kept, score in scored_paths(log_p, log_q):
        if sum(layer_costs[i] for i in kept) <= bound and (best is None or score > best[0]):
            best = (score, kept)
    if best is None:
        return None
    kept = best[1]
    shared = len(log_p) == 1
    rest = [kept[0] if shared else _argmax(log_p[layer]) for layer in range(len(kept), n_layers)]
    return [*kept, *rest], len(kept)


def cheapest(log_p: Sequence[Sequence[float]], log_q: Sequence[float], layer_costs: Sequence[float]) -> float:
    """The FLOPs of the cheapest path of nonzero probability (what a bound must allow for any decision)."""
    return min(sum(layer_costs[i] for i in kept) for kept, _ in scored_paths(log_p, log_q))


def _argmax(row: Sequence[float]) -> int:
    return max(range(len(row)), key=row.__getitem__)  # the first of equal maxima, as torch's argmax
