"""How firmly a search made its decision, read from its per-epoch trajectory (`result.json` search.trajectory).

The paper's controllers "converge in only a few training steps" (section 3.5.2); a decision taken from logits
that barely left zero is a coin toss. Three numbers say which of the two a run's decision was:
- `width_p`: at the decision epoch, the least probability any kept layer gives the width it chose;
- `depth_q`: at the decision epoch, the probability of the chosen exit depth;
- `settled_epochs`: how many of the search's final epochs end on the decision's architecture (chosen widths
  of the kept layers and the depth); 0 when the last epoch's choice is another architecture. Epochs before
  the first architecture step (a warm-up: alpha and beta still exactly their initial zeros) never count.
Uniform is 1/m for a width (m candidates) and 1/L for a depth. The probabilities are the ones each method's
trajectory records: DNS-Rec's softmax(logits / tau) at the decision epoch's temperature, DARTS's and
ProxylessNAS's softmax(logits), RecNAS's over the candidates it has not pruned (so 1.0 once one is left);
RecNAS's choice is its FLOPs-bounded one, not always the argmax, and is what is scored here. Plain Python (no
torch): the results database computes these when it records a run, for runs recorded before they existed too.
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
            f"the decision's architecture over the last {self.settled_epochs} search epoch(s)"
        )


def _chosen_architecture(epoch: Mapping[str, Any]) -> tuple[tuple[int, ...], int]:
    depth = int(epoch["depth"])
    return tuple(int(c) for c in epoch["candidates"][:depth]), depth


def _before_architecture_steps(epoch: Mapping[str, Any]) -> bool:
    """alpha and beta are initialised to exact zeros (dnsrec.nas.controllers) and stay so until a step."""
    return all(x == 0.0 for row in epoch["alpha"] for x in row) and all(x == 0.0 for x in epoch["beta"])


def commitment(trajectory: Sequence[Mapping[str, Any]], best_epoch: int) -> Commitment | None:
    """The decision's commitment, or None where the trajectory does not have the decision epoch or its
    fields (an old or foreign result: unknown, never guessed)."""
    try:
        by_epoch = {int(e["epoch"]): e for e in trajectory}
        decision = by_epoch[int(best_epoch)]
        chosen, depth = _chosen_architecture(decision)
        width_p = min(float(decision["p"][layer][c]) for layer, c in enumerate(chosen))
        depth_q = float(decision["q"][depth - 1])
        settled = 0
        for epoch in sorted(by_epoch, reverse=True):
            entry = by_epoch[epoch]
            if _before_architecture_steps(entry) or _chosen_architecture(entry) != (chosen, depth):
                break
            settled += 1
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    if depth < 1 or not chosen:
        return None
    return Commitment(width_p, depth_q, settled)
