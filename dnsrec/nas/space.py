"""The DNS-Rec search space: m candidate widths per layer (zero-masks) and L layers (paper §2.3).

Candidate i keeps the first (1 - gamma_i) d hidden dimensions and the first (1 - gamma'_i) D inner
dimensions. Heads are contiguous, so the hidden keep must be a whole number of heads: pruning removes
heads, never part of one. Everything is checked at construction with messages naming the config key.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from dnsrec.config import DEFAULT_ATTENTION, DEFAULT_DROPOUT, MAX_GATE_LAYERS
from dnsrec.errors import ConfigError


@dataclass(frozen=True)
class SearchSpace:
    n_items: int
    max_len: int
    d: int  # the supernet's widths: a dataset preset's (`dataset.d`, `dataset.inner`)
    inner: int
    # No defaults for the rest of the shape: a dataset preset and the run config hold them (one home), and a
    # default here would silently give a hand-built space the ML presets' pruning.
    n_heads: int
    n_layers: int  # L, the supernet depth
    pruning: tuple[float, ...]  # gamma_i for the hidden mask
    gate_layers: int  # L_d, 0 = no gates
    inner_pruning: tuple[float, ...] | None = None  # gamma'_i for the inner mask; None = same as pruning
    attention: str = DEFAULT_ATTENTION
    dropout: float = DEFAULT_DROPOUT

    def __post_init__(self) -> None:
        if self.d % self.n_heads:
            raise ConfigError(f"config key 'search.heads': {self.n_heads} does not divide dataset.d={self.d}")
        if not 0 <= self.gate_layers <= MAX_GATE_LAYERS:
            raise ConfigError(
                f"config key 'gates.layers': expected an integer in 0..{MAX_GATE_LAYERS}, got {self.gate_layers!r}"
            )
        if self.n_layers < 1:
            raise ConfigError(f"config key 'search.layers': expected >= 1, got {self.n_layers}")
        if len(self.pruning) < 1:
            raise ConfigError("config key 'dataset.pruning': at least one candidate is needed")
        if self.inner_pruning is not None and len(self.inner_pruning) != len(self.pruning):
            raise ConfigError(
                "config key 'dataset.inner_pruning': needs one intensity per candidate of dataset.pruning"
            )
        for key, gammas, width, unit in (
            ("dataset.pruning", self.pruning, self.d, self.d // self.n_heads),
            ("dataset.inner_pruning", self.inner_gammas, self.inner, 1),
        ):
            for g in gammas:
                if not isinstance(g, (int, float)) or not 0 <= g < 1:
                    raise ConfigError(f"config key '{key}': pruning intensity {g!r} is not in [0, 1)")
                keep = (1 - g) * width
                if abs(keep - round(keep)) > 1e-9 or round(keep) % unit or round(keep) < unit:
                    what = f"whole heads of {unit}" if unit > 1 else "whole dimensions"
                    raise ConfigError(
                        f"config key '{key}': intensity {g} keeps {keep:g} of {width} dimensions, "
                        f"which is not a positive number of {what}"
                    )
            kept = [round((1 - g) * width) for g in gammas]
            if len(set(kept)) != len(kept):
                raise ConfigError(
                    f"config key '{key}': {len(kept)} candidates but only {len(set(kept))} distinct widths "
                    f"({kept}); the width allows at most {width // unit} candidates"
                )

    @property
    def inner_gammas(self) -> tuple[float, ...]:
        return self.inner_pruning if self.inner_pruning is not None else self.pruning

    @property
    def m(self) -> int:
        return len(self.pruning)

    @property
    def head_dim(self) -> int:
        return self.d // self.n_heads

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        return tuple(round((1 - g) * self.d) for g in self.pruning)

    @property
    def inner_widths(self) -> tuple[int, ...]:
        return tuple(round((1 - g) * self.inner) for g in self.inner_gammas)

    def hidden_masks(self) -> torch.Tensor:
        """(m, d) float: row i is 1 on the first hidden_widths[i] dimensions, 0 elsewhere."""
        return _leading_masks(self.hidden_widths, self.d)

    def inner_masks(self) -> torch.Tensor:
        """(m, D) float: row i is 1 on the first inner_widths[i] dimensions."""
        return _leading_masks(self.inner_widths, self.inner)


def _leading_masks(widths: tuple[int, ...], size: int) -> torch.Tensor:
    return (torch.arange(size)[None, :] < torch.tensor(widths)[:, None]).float()
