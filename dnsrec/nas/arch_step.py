"""The architecture step of the bilevel search (paper Eq. 13-14): CE + lambda * the controllers' resource
term on alpha and beta (DNS-Rec's L_RC is `dnsrec.nas.controllers.resource_loss`).

An architecture batch is a set of sequences and the (row, position) pairs whose outputs are scored:
- validation batches (the paper): each user's whole validation input, scored at its last position;
- training batches (the published code's option): the weight step's own windows, scored at every target
  position. With causal attention the output at position t of a window is the output of the prefix
  0..t alone, so this is the reference's one-sample-per-prefix loss from ONE forward of the windows
  (expanding each target into its own padded prefix feeds up to N times more positions through the
  supernet; a test compares the two).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dnsrec.evaluate import Evaluator
from dnsrec.nas.controllers import Controllers
from dnsrec.nas.supernet import Supernet
from dnsrec.train import distributed
from dnsrec.train.device import Placement
from dnsrec.train.loss import item_cross_entropy


@dataclass(frozen=True)
class ArchBatch:
    """Sequences (B, W), and the outputs `seqs[rows, cols]` scored against `targets` (all (T,)).
    `one_per_row`: row i is scored at cols[i] only, so the supernet's final layer runs for that position
    alone."""

    seqs: Tensor
    rows: Tensor
    cols: Tensor
    targets: Tensor
    one_per_row: bool = False

    @classmethod
    def last_positions(cls, seqs: Tensor, lengths: Tensor, targets: Tensor) -> ArchBatch:
        """Right-padded sequences, each scored at its last real position (validation inputs)."""
        return cls(seqs, torch.arange(len(seqs), device=seqs.device), lengths - 1, targets, one_per_row=True)

    @classmethod
    def windows(cls, inputs: Tensor, targets: Tensor) -> ArchBatch:
        """Training windows (B, N) with a target (> 0) at every position that carries a loss."""
        rows, cols = (targets > 0).nonzero(as_tuple=True)
        return cls(inputs, rows, cols, targets[rows, cols])

    @classmethod
    def empty(cls, device: torch.device) -> ArchBatch:
        """A rank's share of a batch too small to reach it."""
        none = torch.zeros(0, dtype=torch.int64, device=device)
        return cls(none[:, None], none, none, none)

    def __len__(self) -> int:
        return len(self.targets)

    def parts(self, max_positions: int) -> list[ArchBatch]:
        """The batch cut into parts of whole rows, each feeding at most `max_positions` positions (rows x
        width) through the supernet, at least one row; 0 = the batch whole. A last-position part is cut to its
        own longest history. Every scored target is in exactly one part, in the batch's order."""
        n_rows, width = self.seqs.shape
        per_part = n_rows if max_positions == 0 else max(1, max_positions // max(width, 1))
        if per_part >= n_rows:
            return [self]
        parts = []
        for start in range(0, n_rows, per_part):
            keep = (self.rows >= start) & (self.rows < start + per_part)
            cols = self.cols[keep]
            seqs = self.seqs[start : start + per_part]
            if self.one_per_row:
                seqs = seqs[:, : int(cols.max()) + 1]
            parts.append(ArchBatch(seqs, self.rows[keep] - start, cols, self.targets[keep], self.one_per_row))
        return parts


class ArchBatches:
    """Validation batches for architecture steps: batch k is a pure function of (seed, k), so a resumed
    search draws exactly the batches an uninterrupted one would (users cycle through seeded permutations)."""

    def __init__(self, evaluator: Evaluator, batch: int, seed: int, device: torch.device) -> None:
        inputs = evaluator.inputs("valid")
        self.seqs = torch.from_numpy(inputs.seqs).to(device)
        self.lengths = torch.from_numpy(inputs.lengths).to(device)
        self.widths = inputs.lengths
        self.targets = torch.from_numpy(inputs.targets).to(device)
        self.batch, self.seed = min(batch, len(self.targets)), seed
        self._perms: dict[int, np.ndarray] = {}

    def _perm(self, cycle: int) -> np.ndarray:
        if cycle not in self._perms:
            self._perms = {cycle: np.random.default_rng([self.seed, 7, cycle]).permutation(len(self.targets))}
        return self._perms[cycle]

    def get(self, k: int, share: np.ndarray | None = None) -> ArchBatch:
        """Batch k, or only its rows `share` (a rank's part of it)."""
        n = len(self.targets)
        positions = np.arange(k * self.batch, (k + 1) * self.batch)
        idx_np = np.concatenate(
            [self._perm(int(c))[positions[positions // n == c] % n] for c in np.unique(positions // n)]
        )
        if share is not None:
            idx_np = idx_np[share]
        if not len(idx_np):
            return ArchBatch.empty(self.seqs.device)
        idx = torch.from_numpy(idx_np).to(self.seqs.device)
        width = int(self.widths[idx_np].max())  # right padding beyond the longest history changes nothing
        return ArchBatch.last_positions(self.seqs[idx, :width], self.lengths[idx], self.targets[idx])


def arch_ce(
    supernet: Supernet,
    p: Tensor,
    q: Tensor,
    batch: ArchBatch,
    placement: Placement,
    denominator: float | None = None,
    exits: str = "mixture",
) -> Tensor:
    """CE at the batch's scored positions as a function of the relaxed (p, q) (zero for an empty batch): of the
    q-mixture of the exits, or with `exits="each"` (`search.arch_exits`) the expected CE sum_l q_l CE(T^(l)).
    The supernet's weights enter as detached constants, so no weight receives a gradient (nor do an engine's
    gradient hooks fire)."""
    if not len(batch):
        return torch.zeros((), device=p.device)
    weights = {name: w.detach() for name, w in supernet.named_parameters()}
    each = exits == "each"
    options = {"each_exit": True} if each else {}  # the mixture's call is the supernet's plain forward
    with placement.autocast():
        if batch.one_per_row:
            out = torch.func.functional_call(supernet, weights, (batch.seqs, p, q, batch.cols), options)
        else:
            out = torch.func.functional_call(supernet, weights, (batch.seqs, p, q), options)
            out = out[:, batch.rows, batch.cols] if each else out[batch.rows, batch.cols]

    def ce(hidden: Tensor) -> Tensor:
        return item_cross_entropy(
            hidden,
            supernet.output_weight.detach(),
            batch.targets,
            compute_dtype=placement.compute_dtype,
            denominator=denominator,
        )

    if not each:
        return ce(out)
    return sum((q[layer] * ce(h) for layer, h in enumerate(out)), torch.zeros((), device=p.device))


def arch_step(
    supernet: Supernet,
    controllers: Controllers,
    opt: torch.optim.Optimizer,
    batch: ArchBatch,
    step: int,
    lam: float,
    flops: Tensor,
    placement: Placement,
    generator: torch.Generator | None = None,
    *,
    denominator: float | None = None,
    resource: bool = True,
    move_depth: bool = True,
    part_positions: int = 0,
    exits: str = "mixture",
) -> tuple[Tensor, int]:
    """One step on alpha, beta: CE at the batch's scored positions + lambda * the controllers' resource term
    (DNS-Rec: L_RC, Eq. 13; a baseline's own, or none: `Controllers.resource_term`).

    L_t = argmax(beta) + 1 is taken here, before the step, as a constant (no gradient through it).

    On several ranks each passes its share of the batch (possibly none), `denominator` = the whole
    batch's number of targets, and `resource=True` on one rank only; the controllers' gradients are summed
    over ranks before the step, so every rank takes the same step. With `move_depth=False` (`search.depth_hold`)
    beta takes no step: its gradient is dropped, so Adam neither moves it nor counts the step in its moments.

    `part_positions` (`search.arch_part`) bounds the positions of one forward: the batch runs in parts
    (`ArchBatch.parts`), each part's CE divided by the whole batch's count and backpropagated to the relaxed
    (p, q) at once, so only one part's activations are alive; the summed gradient of (p, q) then goes through the
    controllers once. The step is the one-forward step's (the same sum, in another order of additions).
    `exits` (`search.arch_exits`): the CE of the q-mixture of the exits, or the expected CE over them (`arch_ce`).
    Returns the local loss and the L_t used.
    """
    l_t = controllers.argmax_depth()
    p, q = controllers(step, generator=generator)
    parts = batch.parts(part_positions)
    if len(parts) == 1:  # one forward, its graph through the controllers (bit for bit the step before parts)
        ce = objective = arch_ce(supernet, p, q, batch, placement, denominator, exits)
    else:
        total = float(len(batch)) if denominator is None else denominator
        ce, objective = _ce_in_parts(supernet, p, q, parts, placement, total, exits)
    rc = controllers.resource_term(p, q, flops, l_t) if resource else None
    if rc is not None:
        objective = objective + lam * rc
    opt.zero_grad(set_to_none=True)
    if objective.requires_grad:
        objective.backward()
    distributed.all_reduce_grads_(controllers.parameters())
    if not move_depth:
        controllers.beta.grad = None
    opt.step()
    loss = ce if rc is None else ce + lam * rc
    return loss.detach(), l_t


def _ce_in_parts(
    supernet: Supernet,
    p: Tensor,
    q: Tensor,
    parts: list[ArchBatch],
    placement: Placement,
    denominator: float,
    exits: str,
) -> tuple[Tensor, Tensor]:
    """The CE of a batch run in parts: each part's CE (over the whole batch's `denominator`) is backpropagated
    to detached copies of p and q at once, freeing its activations; returns the CE and an objective whose
    gradient through p and q (the relaxation: softmax, Gumbel, straight-through) is the CE's."""
    p_in, q_in = p.detach().requires_grad_(), q.detach().requires_grad_()
    ce = torch.zeros((), device=p.device)
    for part in parts:
        part_ce = arch_ce(supernet, p_in, q_in, part, placement, denominator, exits)
        if part_ce.requires_grad:
            part_ce.backward()
        ce = ce + part_ce.detach()
    objective = sum(((x * x_in.grad).sum() for x, x_in in ((p, p_in), (q, q_in)) if x_in.grad is not None), ce)
    return ce, objective
