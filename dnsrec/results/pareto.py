"""The Pareto front of quality (higher is better) against cost (lower is better), e.g. NDCG@10 vs FLOPs.

A point is on the front when no other point is at least as good on both and strictly better on one.
Equal points are all kept (neither dominates the other). O(n log n): sort by cost, then by quality
descending, and keep each point that beats every cheaper one.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def front(points: Sequence[tuple[K, float, float]]) -> list[K]:
    """Keys of the non-dominated `(key, quality, cost)` points, by cost ascending."""
    ordered = sorted(points, key=lambda p: (p[2], -p[1]))
    kept: list[K] = []
    best: tuple[float, float] | None = None  # (quality, cost) of the best point seen so far
    for key, quality, cost in ordered:
        if best is None or quality > best[0] or (quality, cost) == best:
            kept.append(key)
            best = (quality, cost)
    return kept


def dominated(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether (quality, cost) `a` is dominated by `b`: the definition, for brute-force checks."""
    return b[0] >= a[0] and b[1] <= a[1] and b != a
