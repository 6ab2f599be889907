"""dnsrec.nas.commitment: how firmly a search decided, against values worked out by hand from a written
trajectory (two kept layers, m = 3 widths, L = 4 depths)."""

from __future__ import annotations

from typing import Any

from dnsrec.nas.commitment import Commitment, commitment

TRAINED = {"alpha": [[0.1, -0.2, 0.3]], "beta": [0.5, 0.1, -0.2, -0.3]}  # after some architecture steps
UNTRAINED = {"alpha": [[0.0, 0.0, 0.0]], "beta": [0.0, 0.0, 0.0, 0.0]}  # a warm-up epoch: still the zero init


def _epoch(
    epoch: int,
    candidates: list[int],
    depth: int,
    p: list[list[float]],
    q: list[float],
    logits: dict[str, Any] = TRAINED,
) -> dict[str, Any]:
    return {"epoch": epoch, "candidates": candidates, "depth": depth, "p": p, "q": q, **logits}


# Layers 0-1 are kept at depth 2; layers 2-3 are not, and their low p must not count.
P = [[0.1, 0.2, 0.7], [0.3, 0.6, 0.1], [0.05, 0.05, 0.9], [0.9, 0.05, 0.05]]
Q = [0.1, 0.8, 0.05, 0.05]
TRAJECTORY = [
    _epoch(1, [0, 0, 0, 0], 1, P, Q),
    _epoch(2, [2, 1, 0, 0], 2, P, Q),  # the decision: layer 0 width 2 (p 0.7), layer 1 width 1 (p 0.6), depth 2
    _epoch(3, [2, 1, 2, 2], 2, P, Q),  # layers past the depth are not part of the architecture
    _epoch(4, [2, 1, 0, 1], 2, P, Q),
]


def test_the_least_kept_layer_p_the_depth_q_and_the_settled_tail() -> None:
    assert commitment(TRAJECTORY, best_epoch=2) == Commitment(width_p=0.6, depth_q=0.8, settled_epochs=3)


def test_the_choice_is_scored_even_where_it_is_not_the_most_likely() -> None:
    """RecNAS's FLOPs-bounded choice need not be the argmax: its own probabilities are what count."""
    # layer 0 width 0 (p 0.1), layer 1 width 2 (0.1), layer 2 width 1 (0.05); depth 3 (q 0.05)
    bounded = [_epoch(1, [0, 2, 1, 0], 3, P, Q)]
    assert commitment(bounded, best_epoch=1) == Commitment(0.05, 0.05, 1)


def test_a_search_that_moved_away_from_its_decision_has_settled_nothing() -> None:
    moved = [*TRAJECTORY[:3], _epoch(4, [2, 1, 0, 0], 3, P, Q)]  # the last epoch's choice is depth 3
    assert commitment(moved, best_epoch=2) == Commitment(0.6, 0.8, 0)
    # decided at the first epoch, left at the second, back later: only the unbroken tail counts
    back = [_epoch(1, [2, 1, 0, 0], 2, P, Q), _epoch(2, [0, 0, 0, 0], 2, P, Q), _epoch(3, [2, 1, 0, 0], 2, P, Q)]
    assert commitment(back, best_epoch=1) == Commitment(0.6, 0.8, 1)


def test_warm_up_epochs_before_any_architecture_step_never_count() -> None:
    warm = [_epoch(e, [0, 0, 0, 0], 1, P, Q, UNTRAINED) for e in (1, 2)]
    steps = [_epoch(e, [0, 0, 0, 0], 1, P, Q) for e in (3, 4)]
    assert commitment([*warm, *steps], best_epoch=4) == Commitment(0.1, 0.1, 2)


def test_an_unreadable_trajectory_is_unknown_not_guessed() -> None:
    assert commitment(TRAJECTORY, best_epoch=7) is None  # no such epoch
    assert commitment([], best_epoch=1) is None
    no_q = [{k: v for k, v in e.items() if k != "q"} for e in TRAJECTORY]
    assert commitment(no_q, best_epoch=2) is None
    assert commitment([_epoch(1, [0], 0, P, Q)], best_epoch=1) is None  # depth 0 is not a decision
