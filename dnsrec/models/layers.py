"""Transformer layer pieces shared by SASRec, the DNS-Rec supernet and the compact searched model.

One layer, three uses (DNS-Rec paper §2.3-2.7; docs/method.md "Supernet", "Data-aware gates", "Retraining"):
- SASRec: every width is d, no gates, no masks;
- supernet: every width full (r = h = d, D), with zero-masks passed as ARGUMENTS to `forward` (one expected
  mask per site, never m masked copies) on the outputs of Q, K, V, the attention output projection, both
  FFN dense layers and every gate layer;
- compact model: residual width r (d for the `wide` shape, d' for `narrow`), attention width h (whole
  heads of the original head size), inner width D'; the attention output and the second dense layer produce
  h values that are zero-padded to r, which is exactly what the masked supernet computes when r > h.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dnsrec.models.attention import (
    linear_attention,
    linear_attention_last,
    linear_attention_prefix,
    softmax_attention,
)


def item_scores(hidden: Tensor, item_weight: Tensor) -> Tensor:
    """Scores of every item (B, n_items + 1) in fp32 (or fp64 for fp64 inputs), whatever autocast is active.

    Ranking needs fp32: rounded to bf16 (8 bits of mantissa) many negatives tie the target, and ties
    count against it (on ML-1M, 479 of 6,040 test users and -0.002 pop100 NDCG@10). Only this product is
    widened; the layers below keep the training precision.
    """
    dtype = torch.promote_types(torch.promote_types(hidden.dtype, item_weight.dtype), torch.float32)  # fp64 stays
    with torch.autocast(device_type=hidden.device.type, enabled=False):
        return hidden.to(dtype) @ item_weight.to(dtype).T


def _masked(x: Tensor, mask: Tensor | None) -> Tensor:
    return x if mask is None else x * mask


def _pad_to(x: Tensor, width: int) -> Tensor:
    return x if x.shape[-1] == width else F.pad(x, (0, width - x.shape[-1]))


class Gate(nn.Module):
    """Data-aware gate (paper Eqs. 5-6): delta = 2 * sigmoid(MLP(X)), L_d linear layers, ReLU between.

    Every hidden layer is as wide as the output (docs/method.md). With N(0, 0.02) weights and zero biases delta
    starts near 1, so a fresh gate leaves the FFN as it is. `mask` zero-masks every layer's output, so a
    pruned gate is exactly a narrower gate.
    """

    def __init__(self, d_in: int, width: int, n_layers: int) -> None:
        super().__init__()
        assert n_layers >= 1
        self.layers = nn.ModuleList(nn.Linear(d_in if i == 0 else width, width) for i in range(n_layers))

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = _masked(layer(x), mask)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return _masked(2.0 * torch.sigmoid(x), mask)


class SelfAttention(nn.Module):
    def __init__(self, r: int, h: int, head_dim: int, attention: str, dropout: float, eps: float) -> None:
        super().__init__()
        assert h % head_dim == 0, f"attention width {h} is not a whole number of heads of {head_dim}"
        # attention: "softmax", "linear" (quadratic causal form) or "linear-prefix" (prefix-sum form)
        self.n_heads, self.attention, self.p = h // head_dim, attention, dropout
        self.query = nn.Linear(r, h)
        self.key = nn.Linear(r, h)
        self.value = nn.Linear(r, h)
        self.out = nn.Linear(h, h)
        self.norm = nn.LayerNorm(r, eps=eps)
        self.drop = nn.Dropout(dropout)

    def heads(self, x: Tensor) -> Tensor:
        b, n, h = x.shape
        return x.view(b, n, self.n_heads, h // self.n_heads).transpose(1, 2)  # (B, H, N, dh)

    def forward(self, x: Tensor, key_mask: Tensor, last: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """x (B, N, r) -> (B, N, r); with `last` (B,) indices only those positions: (B, 1, r)."""
        k = self.heads(_masked(self.key(x), mask))
        v = self.heads(_masked(self.value(x), mask))
        if last is None:
            residual = x
            q = self.heads(_masked(self.query(x), mask))
            if self.attention == "linear":
                ctx = linear_attention(q, k, v, key_mask)
            elif self.attention == "linear-prefix":
                ctx = linear_attention_prefix(q, k, v, key_mask)
            else:
                ctx = softmax_attention(q, k, v, key_mask, self.p if self.training else 0.0)
        else:
            residual = x[torch.arange(x.shape[0], device=x.device), last][:, None]  # (B, 1, r)
            q = self.heads(_masked(self.query(residual), mask))
            if self.attention.startswith("linear"):
                ctx = linear_attention_last(q, k, v, key_mask)
            else:  # softmax has no cheaper last-position form than computing one query row
                upto = key_mask & (torch.arange(x.shape[1], device=x.device)[None] <= last[:, None])
                ctx = softmax_attention(q, k, v, upto, 0.0, causal=False)
        b, _, n, _ = ctx.shape
        ctx = ctx.transpose(1, 2).reshape(b, n, -1)  # (B, N or 1, h)
        out = _pad_to(_masked(self.out(ctx), mask), residual.shape[-1])
        return self.norm(self.drop(out) + residual)


class FeedForward(nn.Module):
    """Linear r->D, (gate 1), GELU, Linear D->h, (gate 2), dropout, residual, LayerNorm (paper Eq. 8).

    delta_1 multiplies the first dense layer's output before GELU and delta_2 the second's output, as the
    published code does.
    """

    def __init__(self, r: int, h: int, inner: int, gate_layers: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.dense1 = nn.Linear(r, inner)
        self.dense2 = nn.Linear(inner, h)
        self.gate1 = Gate(r, inner, gate_layers) if gate_layers else None
        self.gate2 = Gate(r, h, gate_layers) if gate_layers else None
        self.norm = nn.LayerNorm(r, eps=eps)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, gate_in: Tensor | None, hidden_mask: Tensor | None = None, inner_mask: Tensor | None = None
    ) -> Tensor:
        f1 = _masked(self.dense1(x), inner_mask)
        if self.gate1 is not None:
            assert gate_in is not None, "a gated layer needs the gate input X"
            f1 = f1 * self.gate1(gate_in, inner_mask)
        f2 = _masked(self.dense2(F.gelu(f1)), hidden_mask)
        if self.gate2 is not None:
            assert gate_in is not None
            f2 = f2 * self.gate2(gate_in, hidden_mask)
        return self.norm(self.drop(_pad_to(f2, x.shape[-1])) + x)


class Block(nn.Module):
    """One transformer layer: residual width r, attention width h (whole heads), inner width D."""

    def __init__(
        self,
        r: int,
        h: int,
        inner: int,
        head_dim: int,
        attention: str = "linear",
        gate_layers: int = 0,
        dropout: float = 0.2,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        self.attn = SelfAttention(r, h, head_dim, attention, dropout, eps)
        self.ffn = FeedForward(r, h, inner, gate_layers, dropout, eps)

    def forward(
        self,
        x: Tensor,
        key_mask: Tensor,
        gate_in: Tensor | None = None,
        last: Tensor | None = None,
        hidden_mask: Tensor | None = None,
        inner_mask: Tensor | None = None,
    ) -> Tensor:
        s = self.attn(x, key_mask, last, hidden_mask)
        if last is not None and gate_in is not None:
            gate_in = gate_in[torch.arange(x.shape[0], device=x.device), last][:, None]
        return self.ffn(s, gate_in, hidden_mask, inner_mask)


def init_weights(module: nn.Module) -> None:
    """RecBole's initialisation: N(0, 0.02) weights, zero biases, unit LayerNorm."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
