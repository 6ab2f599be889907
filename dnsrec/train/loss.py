"""Full-softmax cross-entropy over the item catalogue, computed in row chunks.

The naive loss materialises a (targets x items) logits tensor: 256 windows x 100 positions x 164,533
Gowalla items is ~17 GB in fp32 before its gradient (55-64 GiB peak measured). Here the forward pass
walks over chunks of target rows, computes each chunk's logits, its loss and BOTH gradients at once
(d loss / d logits = softmax - onehot), and keeps only the (rows x d) and (items x d) gradients, so peak
memory is one chunk of logits. The backward pass just scales the saved gradients. One logits matmul per
chunk, no recomputation.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

DEFAULT_CHUNK_ELEMENTS = 1 << 25  # logits per chunk: 32M floats = 128 MiB in fp32


class _ChunkedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: Tensor,
        weight: Tensor,
        targets: Tensor,
        chunk_rows: int,
        compute_dtype: torch.dtype,
        denominator: float,
    ) -> Tensor:
        m = hidden.shape[0]
        acc = torch.promote_types(hidden.dtype, torch.float32)  # fp32, or fp64 when given fp64
        w = weight.to(compute_dtype)
        grad_hidden = torch.empty(hidden.shape, dtype=acc, device=hidden.device)
        grad_weight = torch.zeros(weight.shape, dtype=acc, device=weight.device)
        total = torch.zeros((), dtype=acc, device=hidden.device)
        for start in range(0, m, chunk_rows):
            h = hidden[start : start + chunk_rows].to(compute_dtype)
            t = targets[start : start + chunk_rows]
            logits = (h @ w.T).to(acc)  # (rows, items)
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, t[:, None])[:, 0]).sum()
            probs = torch.exp(logits.sub_(lse[:, None]))  # softmax, in place over the logits
            probs[torch.arange(len(t), device=t.device), t] -= 1.0  # d loss / d logits
            p = probs.to(compute_dtype)
            grad_hidden[start : start + chunk_rows] = (p @ w).to(acc)
            grad_weight += (p.T @ h).to(acc)
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        ctx.denominator = denominator
        return total / denominator

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        grad_hidden, grad_weight = ctx.saved_tensors
        scale = grad_out / ctx.denominator
        h_dtype, w_dtype = ctx.dtypes
        return (grad_hidden * scale).to(h_dtype), (grad_weight * scale).to(w_dtype), None, None, None, None


def chunked_cross_entropy(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS,
    compute_dtype: torch.dtype | None = None,
    denominator: float | None = None,
) -> Tensor:
    """Mean CE of `hidden @ weight.T` against `targets`, never holding all the logits at once.

    hidden (M, d), weight (V, d) (the output layer, tied to the item embedding), targets (M,) in
    0..V-1. `compute_dtype` is the matmul dtype (bf16 on a GPU under autocast); softmax, loss and
    gradient accumulation are always fp32. `denominator` (default M) divides the summed CE: a micro-batch
    or a rank's shard of a step divides by the step's target count, so the shards' gradients add up to
    the gradient of the whole step's mean.
    """
    if hidden.shape[0] == 0:
        raise ValueError("chunked_cross_entropy needs at least one target")
    chunk_rows = max(1, chunk_elements // weight.shape[0])
    dtype = compute_dtype or hidden.dtype
    loss: Tensor = _ChunkedCrossEntropy.apply(
        hidden, weight, targets, chunk_rows, dtype, float(denominator or hidden.shape[0])
    )
    return loss


def item_cross_entropy(hidden: Tensor, output_weight: Tensor, targets: Tensor, **kw: Any) -> Tensor:
    """CE over the real items 1..n_items (padding row 0 of the tied output layer is never a class).

    hidden (M, d) at target positions, targets (M,) item ids >= 1.
    """
    return chunked_cross_entropy(hidden, output_weight[1:], targets - 1, **kw)
