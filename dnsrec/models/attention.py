"""Multi-head self-attention: softmax (SASRec) and linear (LinRec, Liu et al. SIGIR 2023; DNS-Rec Eq. 4).

All functions take per-head tensors `(B, H, N, dh)` and a key mask `(B, N)` that is True at real
(non-padding) positions. Sequences are RIGHT-padded, so with causal attention a real position never
sees padding; masking padding keys anyway keeps the guarantee independent of the padding side.

LinRec (docs/method.md): Q' = l2norm(elu(Q)) and K' = l2norm(elu(K)) per token over the head dimension (with an
epsilon so an all-zero, pruned head gives 0, not NaN), output = Q'(K'^T V) / sqrt(dh). The published
code is non-causal; we train with causal windows, so attention is causal and the same prefix form is
used at inference:
- training / all positions: blocks of `CAUSAL_BLOCK` positions; within a block the quadratic form
  (Q'_b K'_b^T * causal) V_b, plus each block's queries times the summed K'^T V states of the blocks
  before it: O(N dh (c + dh)) per head instead of the quadratic O(N^2 dh); the same values up to float
  rounding (the sums are grouped differently). `benchmarks/throughput.py` runs the quadratic form side by
  side: with two CE changes, the ML-100K training step (N = 200) ran 1.65x faster on a CPU (README);
- last position only: q'_N (K'^T V) / sqrt(dh), O(N dh^2) per head instead of O(N^2 dh).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

NORM_EPS = 1e-6
CAUSAL_BLOCK = 20  # positions per block of the causal form (N = 100 and 200 are whole blocks)


def linrec_feature(x: Tensor) -> Tensor:
    """elu, then L2-normalise each token over the head dimension. (B, H, N, dh) -> same."""
    return F.normalize(F.elu(x), p=2.0, dim=-1, eps=NORM_EPS)


def causal_mask(n: int, device: torch.device) -> Tensor:
    """(N, N) bool, True where query i may attend key j (j <= i)."""
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


def linear_attention(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor, block: int = CAUSAL_BLOCK) -> Tensor:
    """Causal LinRec attention at every position. q, k, v: (B, H, N, dh); key_mask (B, N).

    Blockwise (module docstring): positions are padded to whole blocks of `block`; padded keys are zero,
    padded queries are cut off. The feature map runs on contiguous copies: q and k arrive as strided head
    views, on which elu's backward is several times slower.
    """
    qf, kf = linrec_feature(q.contiguous()), linrec_feature(k.contiguous())
    kf = kf * key_mask[:, None, :, None].to(kf.dtype)  # padding keys contribute nothing
    b, h, n, dh = q.shape
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        # An exported model is called with padding trimmed to any length; the block count below is Python
        # arithmetic a trace would freeze, so exports take the quadratic form, whose shapes follow the input.
        scores = (qf @ kf.transpose(-2, -1)).masked_fill(~causal_mask(n, q.device), 0.0)
        return (scores @ v) / math.sqrt(dh)
    pad = (-n) % block
    if pad:
        qf, kf, v = (F.pad(x, (0, 0, 0, pad)) for x in (qf, kf, v))
    nb = (n + pad) // block
    qb, kb, vb = (x.reshape(b, h, nb, block, dh) for x in (qf, kf, v))  # (B, H, nb, c, dh)
    within = (qb @ kb.transpose(-2, -1)).tril() @ vb  # causal inside each block
    states = kb.transpose(-2, -1) @ vb  # (B, H, nb, dh, dh): each block's K'^T V
    summed = states.to(torch.promote_types(states.dtype, torch.float32)).cumsum(dim=2)  # fp32 under bf16
    before = F.pad(summed[:, :, :-1], (0, 0, 0, 0, 1, 0)).to(qb.dtype)  # the sum over all EARLIER blocks
    out = within + qb @ before
    return out.reshape(b, h, nb * block, dh)[:, :, :n] / math.sqrt(dh)  # (B, H, N, dh)


def linear_attention_prefix(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor) -> Tensor:
    """The same causal LinRec attention as prefix sums of K'^T V: O(N dh^2) per head, O(N dh^2) memory.

    out_t = q'_t (sum_{s<=t} k'_s^T v_s) / sqrt(dh). Its multiply-adds (2 N dh^2 per head) are the ones the
    FLOPs definition counts (docs/method.md); training uses the quadratic form, which is faster for N <= ~500.
    """
    qf, kf = linrec_feature(q), linrec_feature(k)
    kf = kf * key_mask[:, None, :, None].to(kf.dtype)
    states = torch.einsum("bhnd,bhne->bhnde", kf, v).cumsum(dim=2)  # (B, H, N, dh, dh)
    return torch.einsum("bhnd,bhnde->bhne", qf, states) / math.sqrt(q.shape[-1])


def linear_attention_last(q_last: Tensor, k: Tensor, v: Tensor, key_mask: Tensor) -> Tensor:
    """LinRec attention of one query per sequence over all its real keys, in O(N dh^2).

    q_last: (B, H, 1, dh), the query at each sequence's last real position; k, v: (B, H, N, dh).
    Keys after the last real position are padding (right padding), so masking padding keys is exactly
    the causal restriction for the last position.
    """
    kf = linrec_feature(k) * key_mask[:, None, :, None].to(k.dtype)
    kv = kf.transpose(-2, -1) @ v  # (B, H, dh, dh)
    return (linrec_feature(q_last) @ kv) / math.sqrt(q_last.shape[-1])  # (B, H, 1, dh)


def softmax_attention(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor, dropout: float, causal: bool = True) -> Tensor:
    """Scaled dot-product attention with padding keys masked (SASRec), causal unless told otherwise.

    q (B, H, Nq, dh), k and v (B, H, N, dh); non-causal calls (one query row at the last position) pass a
    key mask that already excludes later keys. Returns (B, H, Nq, dh).
    """
    allowed = key_mask[:, None, None, :]  # (B, 1, 1, N)
    if causal:
        n = q.shape[-2]
        # A padding query whose row allows nothing would give NaN; let it see itself (its output is unused).
        allowed = (causal_mask(n, q.device) & allowed) | torch.eye(n, dtype=torch.bool, device=q.device)
    # Written as matmuls (not F.scaled_dot_product_attention) so torch's FLOP counter sees them.
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    probs = scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1)
    probs = F.dropout(probs, p=dropout, training=dropout > 0)
    return probs @ v
