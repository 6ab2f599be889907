"""SASRec (Kang & McAuley, ICDM 2018) with softmax or LinRec linear attention.

Follows the reference implementation the paper's numbers come from (RecBole 1.2 `SASRec`): item +
learned absolute position embedding, LayerNorm, dropout; post-LN transformer layers (attention ->
dropout -> residual -> LayerNorm; Linear d->D -> GELU -> Linear D->d -> dropout -> residual ->
LayerNorm); output layer tied to the item embedding; N(0, 0.02) initialisation.

Departures, on purpose (METHOD.md): attention is causal in both variants (we train one causal forward
per window with the loss at every position, instead of one sample per prefix), and inputs are
RIGHT-padded with position 0 at the first item, as in the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dnsrec.models.attention import linear_attention, linear_attention_last, softmax_attention

Attention = Literal["softmax", "linear"]


@dataclass(frozen=True)
class SASRecConfig:
    n_items: int  # real items are 1..n_items; 0 is padding
    max_len: int  # N
    d: int = 128
    inner: int = 256  # D, the feed-forward width
    n_layers: int = 2
    n_heads: int = 8
    dropout: float = 0.2
    attention: Attention = "linear"
    layer_norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        if self.d % self.n_heads:
            raise ValueError(f"d={self.d} must be a multiple of n_heads={self.n_heads}")
        if self.attention not in ("softmax", "linear"):
            raise ValueError(f"attention must be 'softmax' or 'linear', got {self.attention!r}")


class SelfAttention(nn.Module):
    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.n_heads, self.attention, self.p = cfg.n_heads, cfg.attention, cfg.dropout
        self.query = nn.Linear(cfg.d, cfg.d)
        self.key = nn.Linear(cfg.d, cfg.d)
        self.value = nn.Linear(cfg.d, cfg.d)
        self.out = nn.Linear(cfg.d, cfg.d)
        self.norm = nn.LayerNorm(cfg.d, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def heads(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.n_heads, d // self.n_heads).transpose(1, 2)  # (B, H, N, dh)

    def forward(self, x: Tensor, key_mask: Tensor, last: Tensor | None = None) -> Tensor:
        """x (B, N, d) -> (B, N, d); with `last` (B,) indices, only those positions: (B, 1, d)."""
        k, v = self.heads(self.key(x)), self.heads(self.value(x))
        if last is None:
            q = self.heads(self.query(x))
            if self.attention == "linear":
                ctx = linear_attention(q, k, v, key_mask)
            else:
                ctx = softmax_attention(q, k, v, key_mask, self.p if self.training else 0.0)
            residual = x
        else:
            residual = x[torch.arange(len(x), device=x.device), last][:, None]  # (B, 1, d)
            q = self.heads(self.query(residual))
            if self.attention == "linear":
                ctx = linear_attention_last(q, k, v, key_mask)
            else:
                # Softmax has no cheap last-position form beyond computing one query row.
                mask = key_mask & (torch.arange(x.shape[1], device=x.device)[None] <= last[:, None])
                ctx = softmax_attention(q, k, v, mask, 0.0, causal=False)
        b, _, n, _ = ctx.shape
        ctx = ctx.transpose(1, 2).reshape(b, n, -1)  # (B, N or 1, d)
        return self.norm(self.drop(self.out(ctx)) + residual)


class FeedForward(nn.Module):
    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.dense1 = nn.Linear(cfg.d, cfg.inner)
        self.dense2 = nn.Linear(cfg.inner, cfg.d)
        self.norm = nn.LayerNorm(cfg.d, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.drop(self.dense2(F.gelu(self.dense1(x)))) + x)


class Block(nn.Module):
    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.attn = SelfAttention(cfg)
        self.ffn = FeedForward(cfg)

    def forward(self, x: Tensor, key_mask: Tensor, last: Tensor | None = None) -> Tensor:
        return self.ffn(self.attn(x, key_mask, last))


class SASRec(nn.Module):
    """Scores: `score(seqs, lengths) -> (B, n_items + 1)`; training: `forward(seqs) -> (B, N, d)`."""

    def __init__(self, cfg: SASRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.item_emb = nn.Embedding(cfg.n_items + 1, cfg.d, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.d)
        self.norm = nn.LayerNorm(cfg.d, eps=cfg.layer_norm_eps)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.apply(_init_weights)

    @property
    def output_weight(self) -> Tensor:
        """The tied output layer: row i scores item i (row 0, padding, is never a target)."""
        return self.item_emb.weight

    def embed(self, seqs: Tensor) -> Tensor:
        n = seqs.shape[1]
        assert n <= self.cfg.max_len, f"sequence length {n} > max_len {self.cfg.max_len}"
        pos = torch.arange(n, device=seqs.device)
        return self.drop(self.norm(self.item_emb(seqs) + self.pos_emb(pos)[None]))  # (B, N, d)

    def forward(self, seqs: Tensor) -> Tensor:
        """Hidden state at every position (causal): (B, N) right-padded ids -> (B, N, d)."""
        x, key_mask = self.embed(seqs), seqs > 0
        for block in self.blocks:
            x = block(x, key_mask)
        return x

    def last_hidden(self, seqs: Tensor, lengths: Tensor) -> Tensor:
        """Hidden state at each sequence's last real position: (B, d).

        The last layer runs only for that position (its keys and values still cover the whole
        prefix): with linear attention this is the O(N d^2) form; every earlier layer is causal.
        """
        x, key_mask = self.embed(seqs), seqs > 0
        last = lengths - 1
        for block in self.blocks[:-1]:
            x = block(x, key_mask)
        return self.blocks[-1](x, key_mask, last)[:, 0]

    def score(self, seqs: Tensor, lengths: Tensor) -> Tensor:
        """Scores of every item id for the next item after each sequence: (B, n_items + 1)."""
        return self.last_hidden(seqs, lengths) @ self.output_weight.T


def _init_weights(module: nn.Module) -> None:
    # RecBole's initialisation: N(0, 0.02) weights, zero biases, unit LayerNorm.
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
