"""SASRec (Kang & McAuley, ICDM 2018) with softmax or LinRec linear attention, optionally gated and narrowed.

Follows the reference implementation the paper's numbers come from (RecBole 1.2 `SASRec`): item +
learned absolute position embedding, LayerNorm, dropout; post-LN transformer layers (attention ->
dropout -> residual -> LayerNorm; Linear d->D -> GELU -> Linear D->d -> dropout -> residual ->
LayerNorm); output layer tied to the item embedding; N(0, 0.02) initialisation.

The same class is the compact model DNS-Rec retrains (paper §2.7): per-layer attention and inner widths
(`layers`) and data-aware gates (`gate_layers`) make it the searched architecture; without them it is
plain SASRec.

Departures, on purpose (docs/method.md): attention is causal in both variants (we train one causal forward
per window with the loss at every position, instead of one sample per prefix), and inputs are
RIGHT-padded with position 0 at the first item, as in the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from dnsrec.models.layers import Block, init_weights, item_scores

# "linear-prefix" is LinRec computed as prefix sums (same values; the form whose FLOPs we report).
Attention = Literal["softmax", "linear", "linear-prefix"]


@dataclass(frozen=True)
class SASRecConfig:
    n_items: int  # real items are 1..n_items; 0 is padding
    max_len: int  # N
    d: int = 128  # residual width (embeddings, LayerNorms)
    inner: int = 256  # D, the feed-forward width
    n_layers: int = 2
    n_heads: int = 8
    dropout: float = 0.2
    attention: Attention = "linear"
    layer_norm_eps: float = 1e-12
    gate_layers: int = 0  # L_d of the data-aware gates; 0 = no gates (plain SASRec)
    # Per layer (attention width h, inner width D'); None = (d, inner) everywhere. Head size stays d / n_heads.
    widths: tuple[tuple[int, int], ...] | None = None

    def __post_init__(self) -> None:
        if self.d % self.n_heads:
            raise ValueError(f"d={self.d} must be a multiple of n_heads={self.n_heads}")
        if self.attention not in ("softmax", "linear", "linear-prefix"):
            raise ValueError(f"attention must be 'softmax' or 'linear', got {self.attention!r}")
        if self.widths is not None and len(self.widths) != self.n_layers:
            raise ValueError(f"widths has {len(self.widths)} layers, n_layers={self.n_layers}")

    @property
    def head_dim(self) -> int:
        return self.d // self.n_heads

    def layer_widths(self) -> tuple[tuple[int, int], ...]:
        return self.widths or ((self.d, self.inner),) * self.n_layers


class SASRec(nn.Module):
    """Scores: `score(seqs, lengths) -> (B, n_items + 1)`; training: `forward(seqs) -> (B, N, d)`."""

    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(cfg.n_items + 1, cfg.d, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.d)
        self.norm = nn.LayerNorm(cfg.d, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            Block(cfg.d, h, inner, cfg.head_dim, cfg.attention, cfg.gate_layers, cfg.dropout, cfg.layer_norm_eps)
            for h, inner in cfg.layer_widths()
        )
        self.apply(init_weights)

    @property
    def output_weight(self) -> Tensor:
        """The tied output layer: row i scores item i (row 0, padding, is never a target)."""
        return self.item_emb.weight

    def embed(self, seqs: Tensor) -> Tensor:
        """X: item + position embedding, LayerNorm, dropout. (B, N) -> (B, N, d); also the gates' input."""
        n = seqs.shape[1]
        assert n <= self.cfg.max_len, f"sequence length {n} > max_len {self.cfg.max_len}"
        pos = torch.arange(n, device=seqs.device)
        return self.drop(self.norm(self.item_emb(seqs) + self.pos_emb(pos)[None]))

    def forward(self, seqs: Tensor) -> Tensor:
        """Hidden state at every position (causal): (B, N) right-padded ids -> (B, N, d)."""
        x = gate_in = self.embed(seqs)
        key_mask = seqs > 0
        for block in self.blocks:
            x = block(x, key_mask, gate_in)
        return x

    def last_hidden(self, seqs: Tensor, lengths: Tensor) -> Tensor:
        """Hidden state at each sequence's last real position: (B, d).

        The last layer runs only for that position (its keys and values still cover the whole
        prefix): with linear attention this is the O(N d^2) form; every earlier layer is causal.
        """
        x = gate_in = self.embed(seqs)
        key_mask = seqs > 0
        for block in self.blocks[:-1]:
            x = block(x, key_mask, gate_in)
        return self.blocks[-1](x, key_mask, gate_in, last=lengths - 1)[:, 0]

    def score(self, seqs: Tensor, lengths: Tensor) -> Tensor:
        """Scores of every item id for the next item after each sequence: (B, n_items + 1)."""
        return item_scores(self.last_hidden(seqs, lengths), self.output_weight)
