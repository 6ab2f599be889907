"""Item feature embeddings for the feature-aware baselines (FDSA, SASRecF; docs/method.md "Baselines").

One multi-valued categorical feature per item (MovieLens genres; the item id itself where a dataset has no
feature file). An item with several values is embedded as the MEAN of its values' embeddings: RecBole's
`pooling_mode: mean`, its FDSA default (its SASRecF defaults to `sum`; both models here use the mean, so the two
baselines see the same feature). An item with no value, and the padding item 0, get the zero vector.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


def padded_table(values: np.ndarray, offsets: np.ndarray) -> Tensor:
    """CSR features (item i has `values[offsets[i]:offsets[i+1]]`, ids >= 1) -> (n_items + 1, K) int64,
    each row its item's ids left-aligned and 0-padded to K, the most values of any item (at least 1)."""
    counts = np.diff(offsets)
    table = np.zeros((len(counts), max(1, int(counts.max(initial=0)))), dtype=np.int64)
    rows = np.repeat(np.arange(len(counts)), counts)
    cols = np.arange(len(values)) - np.repeat(offsets[:-1], counts)
    table[rows, cols] = values
    return torch.from_numpy(table)


class FeatureEmbedding(nn.Module):
    """Item ids (B, N) -> feature embeddings (B, N, d): the mean of each item's feature-value embeddings.

    `table` (n_items + 1, K) holds every item's feature ids (1..n_values), 0-padded; a buffer, not a weight
    (it comes from the data, so checkpoints do not carry it).
    """

    table: Tensor

    def __init__(self, table: Tensor, n_values: int, d: int) -> None:
        super().__init__()
        assert table.dim() == 2 and table.dtype == torch.long, "table: (n_items + 1, K) int64"
        assert int(table.max()) <= n_values and int(table.min()) >= 0, "feature ids must lie in 0..n_values"
        self.register_buffer("table", table, persistent=False)
        self.emb = nn.Embedding(n_values + 1, d, padding_idx=0)

    def forward(self, seqs: Tensor) -> Tensor:
        ids = self.table[seqs]  # (B, N, K)
        present = (ids > 0).unsqueeze(-1)  # (B, N, K, 1)
        total = (self.emb(ids) * present).sum(dim=-2)  # (B, N, d); padding rows are zero anyway
        return total / present.sum(dim=-2).clamp(min=1)  # mean over the item's values; no value -> 0
