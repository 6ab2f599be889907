"""From a search decision to a plain compact model (paper §2.7; once-for-all's `get_active_subnet`).

The compact model is an ordinary `SASRec` (with gates and per-layer widths) whose parameters have the same
names as the supernet's; its weights are transferred as the LEADING slices of the supernet's along every
dimension: kept heads and dimensions are the first ones (zero-masks keep leading dimensions), the first
L_o layers are kept. With the `wide` shape the result computes exactly what the supernet computes under
the one-hot selection; with `narrow` the residual stream, embeddings and LayerNorms are cut to d' too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

import torch

from dnsrec.config import RETRAIN_SHAPES
from dnsrec.errors import ConfigError
from dnsrec.models import SASRec, SASRecConfig
from dnsrec.models.layers import Gate
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


def retrained_architecture(arch: Architecture, gate_layers: int | None) -> Architecture:
    """The architecture retraining builds: the searched one, with `retrain.gate_layers` gate layers where that is
    set (Table 6 "Retrain Only": the search had gates, the retrained model fewer or none)."""
    return arch if gate_layers is None else dataclasses.replace(arch, gate_layers=gate_layers)


def gate_parameter_names(model: torch.nn.Module) -> set[str]:
    """The names of the parameters of `model`'s data-aware gates (found by module type, not by name)."""
    return {
        f"{prefix}.{name}"
        for prefix, module in model.named_modules()
        if isinstance(module, Gate)
        for name, _ in module.named_parameters()
    }


def compact_config(
    arch: Architecture, n_items: int, max_len: int, shape: str, attention: str, dropout: float
) -> SASRecConfig:
    """The compact model: `narrow` shrinks everything to r = max h_l; `wide` keeps residual width d."""
    if shape not in RETRAIN_SHAPES:
        raise ConfigError(f"config key 'retrain.shape': expected one of {RETRAIN_SHAPES}, got {shape!r}")
    r = max(arch.hidden) if shape == "narrow" else arch.d
    return SASRecConfig(
        n_items=n_items,
        max_len=max_len,
        d=r,
        inner=max(arch.inner_widths),
        n_layers=arch.depth,
        n_heads=r // arch.head_dim,
        dropout=dropout,
        attention=attention,  # type: ignore[arg-type]
        gate_layers=arch.gate_layers,
        widths=tuple(zip(arch.hidden, arch.inner_widths, strict=True)),
    )


def build_compact(arch: Architecture, space: SearchSpace, shape: str = "narrow") -> SASRec:
    return SASRec(compact_config(arch, space.n_items, space.max_len, shape, space.attention, space.dropout))


@torch.no_grad()
def transfer_weights(
    supernet: Supernet | dict[str, torch.Tensor], compact: SASRec, fresh: Collection[str] = ()
) -> None:
    """Copy into every compact parameter the leading slice of the same-named supernet parameter; those named in
    `fresh` keep their initialisation (gates retrained at another depth than searched: `gate_parameter_names`)."""
    source = supernet if isinstance(supernet, dict) else supernet.state_dict()
    for name, target in compact.state_dict().items():
        if name in fresh:
            continue
        if name not in source:
            raise KeyError(f"compact parameter {name} has no counterpart in the supernet")
        src = source[name]
        if src.dim() != target.dim() or any(t > s for t, s in zip(target.shape, src.shape, strict=True)):
            raise ValueError(f"{name}: compact shape {tuple(target.shape)} does not fit in {tuple(src.shape)}")
        target.copy_(src[tuple(slice(0, n) for n in target.shape)])
