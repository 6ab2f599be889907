"""How firmly a search made its decision, read from its per-epoch trajectory (`result.json` search.trajectory).

The paper's controllers "converge in only a few training steps" (section 3.5.2); a decision taken from logits
that barely left zero is a coin toss. Three numbers say which of the two a run's decision was:
- `width_p`: at the decision epoch, the least probability any kept layer gives the width it chose;
- `depth_q`: at the decision epoch, the probability of the chosen exit depth;
- `settled_epochs`: how many of the search's final epochs end on the decision's argmax architecture (chosen
  widths of the kept layers and the depth); 0 when the last epoch's argmax is another architecture.
Uniform is 1/m for a width (m candidates) and 1/L for a depth. Plain Python (no torch): the results database
computes it when it records a run, for runs recorded before it existed too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple


class Commitment(NamedTuple):
    width_p: float
    depth_q: float
    settled_epochs: int

    def text(self) -> str:
        return (
            f"width p {self.width_p:.2f}, depth q {self.depth_q:.2f}, "
            f"argmax the decision's over the last {self.settled_epochs} search epoch(s)"
        )


def _argmax_architecture(epoch: Mapping[str, Any]) -> tuple[tuple[int, ...], int]:
    depth = int(epoch["depth"])
    return tuple(int(c) for c in epoch["candidates"][:depth]), depth


def commitment(trajectory: Sequence[Mapping[str, Any]], best_epoch: int) -> Commitment | None:
    """The decision's commitment, or None where the trajectory does not have the decision epoch or its
    fields (an old or foreign result: unknown, never guessed)."""
    try:
        by_epoch = {int(e["epoch"]): e for e in trajectory}
        decision = by_epoch[int(best_epoch)]
        chosen, depth = _argmax_architecture(decision)
        width_p = min(float(decision["p"][layer][c]) for layer, c in enumerate(chosen))
        depth_q = float(decision["q"][depth - 1])
        settled = 0
        for epoch in sorted(by_epoch, reverse=True):
            if _argmax_architecture(by_epoch[epoch]) != (chosen, depth):
                break
            settled += 1
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    if depth < 1 or not chosen:
        return None
    return Commitment(width_p, depth_q, settled)
