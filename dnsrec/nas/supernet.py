"""The DNS-Rec supernet (paper §2.3-2.5): L full-width LinRec layers with data-aware gates, zero-masked.

`forward(seqs, p, q)` takes the controllers' relaxed weights as arguments: p (L, m) the candidate
distribution of each layer, q (L,) the exit distribution. At each mask site the m candidates are mixed
through ONE expected mask sum_i p_i M_i (masking is linear, so sum_i p_i (x * M_i) = x * sum_i p_i M_i):
the cost of one candidate, not m. This mixes candidates per site, as the published code does, which
differs from Eq. 10's sum of whole candidate outputs because elu, norms, GELU and LayerNorm are not
linear (docs/method.md). The output is Y = sum_l q_l T^(l) at every position (Eq. 10).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from dnsrec.models.layers import Block, init_weights, item_scores
from dnsrec.nas.space import SearchSpace


class Supernet(nn.Module):
    hidden_masks: Tensor
    inner_masks: Tensor

    def __init__(self, space: SearchSpace, layer_norm_eps: float = 1e-12) -> None:
        super().__init__()
        self.space = space
        d = space.d
        # Same parameter names as SASRec, so a compact model's weights are the leading slices of these.
        self.item_emb = nn.Embedding(space.n_items + 1, d, padding_idx=0)
        self.pos_emb = nn.Embedding(space.max_len, d)
        self.norm = nn.LayerNorm(d, eps=layer_norm_eps)
        self.drop = nn.Dropout(space.dropout)
        self.blocks = nn.ModuleList(
            Block(d, d, space.inner, space.head_dim, space.attention, space.gate_layers, space.dropout, layer_norm_eps)
            for _ in range(space.n_layers)
        )
        self.register_buffer("hidden_masks", space.hidden_masks(), persistent=False)  # (m, d)
        self.register_buffer("inner_masks", space.inner_masks(), persistent=False)  # (m, D)
        self.apply(init_weights)

    @property
    def output_weight(self) -> Tensor:
        return self.item_emb.weight

    def embed(self, seqs: Tensor) -> Tensor:
        pos = torch.arange(seqs.shape[1], device=seqs.device)
        return self.drop(self.norm(self.item_emb(seqs) + self.pos_emb(pos)[None]))

    def forward(
        self, seqs: Tensor, p: Tensor, q: Tensor, last: Tensor | None = None, each_exit: bool = False
    ) -> Tensor:
        """(B, N) right-padded ids, p (L, m), q (L,) -> Y (B, N, d). With `last` (B,) positions: Y at those
        positions only, (B, d); the final layer then runs for that position alone (its keys and values
        still cover the sequence), as `SASRec.last_hidden` does (benchmarks/search_step_cost.py times both).
        With `each_exit`: every exit's output stacked, (L, B, N, d) or (L, B, d), q unused (an argument of
        forward so `torch.func.functional_call` reaches it: `search.arch_exits=each`)."""
        if each_exit:
            return torch.stack(self.exits(seqs, p, last))
        exits = self._exits(seqs, p, last)
        y = q[0] * next(exits)  # a supernet has at least one layer
        for layer, t in enumerate(exits, start=1):
            y = y + q[layer] * t
        return y

    def exits(self, seqs: Tensor, p: Tensor, last: Tensor | None = None) -> list[Tensor]:
        """(B, N) right-padded ids, p (L, m) -> [T^(1), ..., T^(L)], each (B, N, d) (with `last`: (B, d), as in
        `forward`): what every exit depth outputs under the width mixture p, so `forward(seqs, p, q)` =
        sum_l q_l T^(l) (the weight step of `search.weight_exits=each` trains each exit as its own model)."""
        return list(self._exits(seqs, p, last))

    def _exits(self, seqs: Tensor, p: Tensor, last: Tensor | None) -> Iterator[Tensor]:
        x = gate_in = self.embed(seqs)  # X, the gates' input, is the same for every layer
        key_mask = seqs > 0
        hidden_masks = p @ self.hidden_masks  # (L, d): the expected mask of each layer
        inner_masks = p @ self.inner_masks  # (L, D)
        rows = torch.arange(len(seqs), device=seqs.device)
        for layer, block in enumerate(self.blocks):
            final = last is not None and layer == len(self.blocks) - 1
            x = block(
                x,
                key_mask,
                gate_in,
                last=last if final else None,
                hidden_mask=hidden_masks[layer],
                inner_mask=inner_masks[layer],
            )
            yield x if last is None else x[:, 0] if final else x[rows, last]

    def score(self, seqs: Tensor, lengths: Tensor, p: Tensor, q: Tensor) -> Tensor:
        """(B, n_items + 1) scores from the soft mixture at each sequence's last real position."""
        return item_scores(self.forward(seqs, p, q, last=lengths - 1), self.output_weight)
