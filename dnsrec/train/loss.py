"""Full-softmax cross-entropy over the item catalogue, computed in row chunks.

The naive loss materialises a (targets x items) logits tensor: 256 windows x 100 positions x 164,533
Gowalla items is ~17 GB in fp32 before its gradient (55-64 GiB peak measured). Here the forward pass
walks over chunks of target rows, computes each chunk's logits, its loss and the gradients that are
needed at once (d loss / d logits = softmax - onehot), and keeps only the (rows x d) and (items x d)
gradients, so peak memory is one chunk of logits. The backward pass just scales the saved gradients.
One logits matmul per chunk, no recomputation. The chunk size is the config key `train.ce_chunk`
(logits per chunk); 0 selects `materialised_cross_entropy`, the plain unchunked loss, for comparisons.

Per chunk the logits are turned into the softmax in place with ONE exp: shift by the row maximum,
exponentiate, sum, divide (the loss is log(sum) + max - target logit). A gradient an input does not need
(the detached item weights of an architecture step) is not computed.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
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
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        acc = torch.promote_types(hidden.dtype, torch.float32)  # fp32, or fp64 when given fp64
        w = weight.to(compute_dtype)
        grad_hidden = torch.empty(hidden.shape, dtype=acc, device=hidden.device) if need_hidden else None
        grad_weight = torch.zeros(weight.shape, dtype=acc, device=weight.device) if need_weight else None
        total = torch.zeros((), dtype=acc, device=hidden.device)
        for start in range(0, m, chunk_rows):
            h = hidden[start : start + chunk_rows].to(compute_dtype)
            t = targets[start : start + chunk_rows]
            logits = (h @ w.T).to(acc)  # (rows, items), a fresh tensor: the steps below work in place
            target_logit = logits.gather(1, t[:, None])[:, 0]
            peak = logits.amax(dim=-1, keepdim=True)
            probs = logits.sub_(peak).exp_()  # unnormalised softmax, in place over the logits
            norm = probs.sum(dim=-1, keepdim=True)
            total += (norm.log()[:, 0] + peak[:, 0] - target_logit).sum()  # logsumexp - target logit
            if grad_hidden is None and grad_weight is None:
                continue
            probs.div_(norm)
            probs[torch.arange(len(t), device=t.device), t] -= 1.0  # d loss / d logits
            p = probs.to(compute_dtype)
            if grad_hidden is not None:
                grad_hidden[start : start + chunk_rows] = p @ w
            if grad_weight is not None:
                if p.dtype == acc:
                    grad_weight.addmm_(p.T, h)  # no (items x d) temporary per chunk
                else:
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
        gh = None if grad_hidden is None else (grad_hidden * scale).to(h_dtype)
        gw = None if grad_weight is None else (grad_weight * scale).to(w_dtype)
        return gh, gw, None, None, None, None


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
    the gradient of the whole step's mean. `chunk_elements` bounds the logits held at once (at least one
    row); 0 computes the loss unchunked (`materialised_cross_entropy`).
    """
    if hidden.shape[0] == 0:
        raise ValueError("chunked_cross_entropy needs at least one target")
    if chunk_elements < 0:
        raise ValueError(f"chunk_elements must be >= 0 (0 = unchunked), got {chunk_elements}")
    dtype = compute_dtype or hidden.dtype
    denom = float(denominator or hidden.shape[0])
    if chunk_elements == 0:
        return materialised_cross_entropy(hidden, weight, targets, dtype, denom)
    chunk_rows = max(1, chunk_elements // weight.shape[0])
    loss: Tensor = _ChunkedCrossEntropy.apply(hidden, weight, targets, chunk_rows, dtype, denom)
    return loss


def materialised_cross_entropy(
    hidden: Tensor, weight: Tensor, targets: Tensor, compute_dtype: torch.dtype, denominator: float
) -> Tensor:
    """The plain loss: all (M, V) logits at once (matmul in `compute_dtype`, softmax in fp32), through
    autograd. The reference the chunked loss is tested against; memory grows with M x V."""
    acc = torch.promote_types(hidden.dtype, torch.float32)
    with torch.autocast(device_type=hidden.device.type, enabled=False):
        logits = (hidden.to(compute_dtype) @ weight.to(compute_dtype).T).to(acc)
        return F.cross_entropy(logits, targets, reduction="sum") / denominator


def item_cross_entropy(hidden: Tensor, output_weight: Tensor, targets: Tensor, **kw: Any) -> Tensor:
    """CE over the real items 1..n_items (padding row 0 of the tied output layer is never a class).

    hidden (M, d) at target positions, targets (M,) item ids >= 1.
    """
    return chunked_cross_entropy(hidden, output_weight[1:], targets - 1, **kw)
