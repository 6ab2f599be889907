"""What every format reader returns: interactions as parallel columns in file order, before any filtering.

Readers stop at the ids as written in the file so that each format stays a small parser and all ordering,
filtering and id remapping happens once, in `process.py`, identically for every format.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tokens:
    """A column of ids as written in the file, dictionary-encoded: row k holds `vocabulary[codes[k]]`.

    Codes number the distinct ids in order of first appearance. Encoding while reading is several times
    faster than numpy string arrays (np.unique sorts strings) and keeps millions of rows small.
    """

    codes: np.ndarray  # int64 (n,)
    vocabulary: np.ndarray  # str (k,)

    @classmethod
    def encode(cls, values: Iterable[str]) -> Tokens:
        first: dict[str, int] = {}
        codes = [first.setdefault(value, len(first)) for value in values]
        return cls(np.array(codes, dtype=np.int64), np.array(list(first), dtype=str))

    def __len__(self) -> int:
        return len(self.codes)

    def values(self) -> np.ndarray:
        """str (n,): the ids row by row (for tests and inspection)."""
        return self.vocabulary[self.codes]


@dataclass(frozen=True)
class RawInteractions:
    """One row per interaction, in file order.

    `times` is None when the file has no timestamps and its order IS the time order (SASRec's txt);
    `newest_first` says each user's rows run newest to oldest in the file (SNAP Gowalla), which decides
    the order of equal timestamps.
    """

    users: Tokens
    items: Tokens
    times: np.ndarray | None  # float64 (n,) seconds, or None
    source: str  # the file it came from, for messages
    newest_first: bool = False

    def __post_init__(self) -> None:
        n = len(self.users)
        assert len(self.items) == n and (self.times is None or len(self.times) == n), "ragged columns"

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True)
class RawItemFeatures:
    """A multi-valued categorical feature per item id (e.g. genres), read from an item file."""

    name: str
    values: dict[str, tuple[str, ...]]  # item id -> its feature values, in file order
    source: str
