"""dnsrec.nas.commitment: how firmly a search decided, against values worked out by hand from a written
trajectory (two kept layers, m = 3 widths, L = 4 depths)."""

from __future__ import annotations

from typing import Any

from dnsrec.nas.commitment import Commitment, commitment


def _epoch(epoch: int, candidates: list[int], depth: int, p: list[list[float]], q: list[float]) -> dict[str, Any]:
    return {"epoch": epoch, "candidates": candidates, "depth": depth, "p": p, "q": q}


P = [[0.1, 0.2, 0.7], [0.3, 0.6, 0.1], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05]]
Q = [0.1, 0.8, 0.05, 0.05]
TRAJECTORY = [
    _epoch(1, [0, 0, 0, 0], 1, P, Q),
    _epoch(2, [2, 1, 0, 0], 2, P, Q),  # the decision: layer 0 width 2 (p 0.7), layer 1 width 1 (p 0.6), depth 2
    _epoch(3, [2, 1, 2, 2], 2, P, Q),  # layers past the depth are not part of the architecture
    _epoch(4, [2, 1, 0, 1], 2, P, Q),
]


def test_the_least_kept_layer_p_the_depth_q_and_the_settled_tail() -> None:
    assert commitment(TRAJECTORY, best_epoch=2) == Commitment(width_p=0.6, depth_q=0.8, settled_epochs=3)


def test_a_search_that_moved_away_from_its_decision_has_settled_nothing() -> None:
    moved = [*TRAJECTORY[:3], _epoch(4, [2, 1, 0, 0], 3, P, Q)]  # the last epoch's argmax is depth 3
    assert commitment(moved, best_epoch=2) == Commitment(0.6, 0.8, 0)
    # decided at the first epoch, left at the second, back later: only the unbroken tail counts
    back = [_epoch(1, [2, 1, 0, 0], 2, P, Q), _epoch(2, [0, 0, 0, 0], 2, P, Q), _epoch(3, [2, 1, 0, 0], 2, P, Q)]
    assert commitment(back, best_epoch=1) == Commitment(0.6, 0.8, 1)


def test_an_unreadable_trajectory_is_unknown_not_guessed() -> None:
    assert commitment(TRAJECTORY, best_epoch=7) is None  # no such epoch
    assert commitment([], best_epoch=1) is None
    no_q = [{k: v for k, v in e.items() if k != "q"} for e in TRAJECTORY]
    assert commitment(no_q, best_epoch=2) is None
    assert commitment([_epoch(1, [0], 0, P, Q)], best_epoch=1) is None  # depth 0 is not a decision
