"""The one in-memory shape of a dataset: every user's chronological item sequence, ids remapped, 0 = padding."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Split = Literal["valid", "test"]


@dataclass(frozen=True)
class ItemFeatures:
    """A multi-valued categorical feature per item (e.g. MovieLens genres), CSR-encoded.

    Item i (1..n_items) has feature ids `values[offsets[i]:offsets[i+1]]`, each in 1..n_values
    (0 is padding). Row 0 (the padding item) is empty.
    """

    name: str
    values: np.ndarray  # int64 (nnz,)
    offsets: np.ndarray  # int64 (n_items + 2,)
    vocabulary: tuple[str, ...]  # vocabulary[v - 1] is the name of feature id v

    @property
    def n_values(self) -> int:
        return len(self.vocabulary)

    def of(self, item: int) -> np.ndarray:
        return self.values[self.offsets[item] : self.offsets[item + 1]]


@dataclass(frozen=True)
class SequenceData:
    """Users' chronological sequences after filtering and id remapping.

    Real items are 1..n_items (0 is padding); users are 0..n_users-1. User u's full sequence is
    `items[offsets[u]:offsets[u+1]]`, oldest first, and always holds at least 3 items so the
    leave-one-out split has a training item, a validation target and a test target:
    train = seq[:-2], valid target = seq[-2], test target = seq[-1].
    """

    name: str
    n_items: int
    max_len: int  # N: the model sees at most the last N items of a history
    items: np.ndarray  # int64 (n_interactions,)
    offsets: np.ndarray  # int64 (n_users + 1,)
    item_features: ItemFeatures | None = None
    item_ids: tuple[str, ...] = ()  # original id of remapped item i at item_ids[i - 1] (may be empty)

    def __post_init__(self) -> None:
        lengths = np.diff(self.offsets)
        if len(lengths) and lengths.min() < 3:
            raise ValueError(f"{self.name}: every user needs >= 3 items for leave-one-out")
        if len(self.items) and (self.items.min() < 1 or self.items.max() > self.n_items):
            raise ValueError(f"{self.name}: item ids must lie in 1..{self.n_items}")

    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_interactions(self) -> int:
        return len(self.items)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sequence(self, user: int) -> np.ndarray:
        return self.items[self.offsets[user] : self.offsets[user + 1]]

    def popularity(self) -> np.ndarray:
        """Counts per item over every interaction except each user's first (docs/method.md, pop100).

        These are the train/valid/test targets, as the reference library counts them. float64
        (n_items + 1,), index 0 (padding) is 0.
        """
        first = np.zeros(len(self.items), dtype=bool)
        first[self.offsets[:-1]] = True
        counts = np.bincount(self.items[~first], minlength=self.n_items + 1).astype(np.float64)
        counts[0] = 0.0
        return counts
