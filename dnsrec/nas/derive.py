"""From a search decision to a plain compact model (paper §2.7; once-for-all's `get_active_subnet`).

The compact model is an ordinary `SASRec` (with gates and per-layer widths) whose parameters have the same
names as the supernet's; its weights are transferred as the LEADING slices of the supernet's along every
dimension: kept heads and dimensions are the first ones (zero-masks keep leading dimensions), the first
L_o layers are kept. With the `wide` shape the result computes exactly what the supernet computes under
the one-hot selection; with `narrow` the residual stream, embeddings and LayerNorms are cut to d' too.
"""

from __future__ import annotations

import torch

from dnsrec.models import SASRec
from dnsrec.nas.architecture import Architecture
from dnsrec.nas.space import SearchSpace
from dnsrec.nas.supernet import Supernet


def derive_architecture(space: SearchSpace, candidates: list[int], depth: int) -> Architecture:
    """The Architecture of hard choices: candidate index per layer (first `depth` layers kept)."""
    kept = candidates[:depth]
    return Architecture(
        d=space.d,
        inner=space.inner,
        head_dim=space.head_dim,
        hidden=tuple(space.hidden_widths[i] for i in kept),
        inner_widths=tuple(space.inner_widths[i] for i in kept),
        gate_layers=space.gate_layers,
        candidates=tuple(kept),
    )


def build_compact(arch: Architecture, space: SearchSpace, shape: str = "narrow") -> SASRec:
    return SASRec(arch.compact_config(space.n_items, space.max_len, shape, space.attention, space.dropout))


@torch.no_grad()
def transfer_weights(supernet: Supernet | dict[str, torch.Tensor], compact: SASRec) -> None:
    """Copy into every compact parameter the leading slice of the same-named supernet parameter."""
    source = supernet if isinstance(supernet, dict) else supernet.state_dict()
    for name, target in compact.state_dict().items():
        if name not in source:
            raise KeyError(f"compact parameter {name} has no counterpart in the supernet")
        src = source[name]
        if src.dim() != target.dim() or any(t > s for t, s in zip(target.shape, src.shape, strict=True)):
            raise ValueError(f"{name}: compact shape {tuple(target.shape)} does not fit in {tuple(src.shape)}")
        target.copy_(src[tuple(slice(0, n) for n in target.shape)])
