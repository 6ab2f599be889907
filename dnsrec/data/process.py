"""Raw interactions -> `SequenceData`: chronological order, filtering, id remapping, item features.

Every format goes through these same steps, so two files with the same rows give the same dataset:
1. users and items arrive as integer codes (`Tokens`, numbered by first appearance in the file);
2. filtering (optional iterative k-core, optional dropping of users who rated every item), then users with
   fewer than 3 interactions go (leave-one-out needs a training item, a validation and a test target);
3. each user's rows are sorted by time with a STABLE sort, so equal timestamps keep file order (reversed
   first for newest-first files such as Gowalla; files without timestamps keep file order);
4. users are numbered 0..n_users-1 in order of first appearance among the kept rows of the file (as
   RecBole, which remaps after filtering), items 1..n_items (0 = padding) in order of first appearance in
   the final sequences (user 0's, then user 1's, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dnsrec.data.raw import RawInteractions, RawItemFeatures
from dnsrec.data.sequences import ItemFeatures, SequenceData
from dnsrec.errors import DataError

MIN_SEQUENCE = 3  # train item + validation target + test target


@dataclass(frozen=True)
class Filter:
    """Which interactions a preset keeps: iterated to a fixed point, as RecBole does."""

    min_user: int = 0  # users with fewer interactions go (k-core on users)
    min_item: int = 0  # items with fewer interactions go
    drop_full_users: bool = False  # Douban: users who rated every item carry no ranking signal

    def keep(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """bool (n,): the interactions that survive, repeating every rule until nothing changes."""
        keep = np.ones(len(users), dtype=bool)
        while True:
            before = int(keep.sum())
            keep = kcore(users, items, self.min_user, self.min_item, keep)
            if self.drop_full_users:
                keep &= ~full_users(users, items, keep)
            if int(keep.sum()) == before:
                return keep


def kcore(users: np.ndarray, items: np.ndarray, min_user: int, min_item: int, keep: np.ndarray) -> np.ndarray:
    """Remove users with < min_user and items with < min_item interactions until none is left."""
    keep = keep.copy()
    while True:
        user_count = np.bincount(users[keep], minlength=users.max(initial=-1) + 1)
        item_count = np.bincount(items[keep], minlength=items.max(initial=-1) + 1)
        bad = keep & ((user_count[users] < min_user) | (item_count[items] < min_item))
        if not bad.any():
            return keep
        keep &= ~bad


def full_users(users: np.ndarray, items: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """bool (n,): rows of users whose distinct kept items are all the kept items."""
    n_items = len(np.unique(items[keep]))
    width = items.max(initial=-1) + 1
    pairs = np.unique(users[keep] * width + items[keep])  # distinct (user, item) pairs
    distinct = np.bincount(pairs // width, minlength=users.max(initial=-1) + 1)
    return keep & (distinct[users] == n_items)


def first_appearance_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int64 codes 0..k-1 numbered by first appearance, and the k distinct values in that order."""
    distinct, first, inverse = np.unique(values, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank[inverse.reshape(-1)], distinct[order]


def chronological_order(
    users: np.ndarray, times: np.ndarray | None, positions: np.ndarray, newest_first: bool
) -> np.ndarray:
    """Permutation grouping rows by user code, each user's oldest first; ties keep (reversed) file order."""
    tiebreak = -positions if newest_first else positions
    keys = (tiebreak, users) if times is None else (tiebreak, times, users)
    return np.lexsort(keys)  # last key is the primary one


def build_sequences(
    raw: RawInteractions,
    features: RawItemFeatures | None,
    *,
    name: str,
    max_len: int,
    filtering: Filter = Filter(),
) -> SequenceData:
    if len(raw) == 0:
        raise DataError(f"{raw.source}: no interactions")
    users, items, item_tokens = raw.users.codes, raw.items.codes, raw.items.vocabulary

    keep = filtering.keep(users, items)
    long_enough = np.bincount(users[keep], minlength=users.max() + 1) >= MIN_SEQUENCE
    rows = np.flatnonzero(keep & long_enough[users])
    if len(rows) == 0:
        raise DataError(
            f"{raw.source}: no user has {MIN_SEQUENCE} interactions left after filtering ({filtering})",
        )
    kept_users, _ = first_appearance_codes(users[rows])  # final user ids: first appearance among kept rows
    times = None if raw.times is None else raw.times[rows]
    order = chronological_order(kept_users, times, rows, raw.newest_first)
    rows, kept_users = rows[order], kept_users[order]

    new_items, kept_items = first_appearance_codes(items[rows])
    offsets = np.concatenate([[0], np.cumsum(np.bincount(kept_users))]).astype(np.int64)
    item_ids = tuple(item_tokens[kept_items].tolist())
    return SequenceData(
        name=name,
        n_items=len(kept_items),
        max_len=max_len,
        items=new_items + 1,
        offsets=offsets,
        item_features=None if features is None else item_features(item_ids, features),
        item_ids=item_ids,
    )


def item_features(item_ids: Sequence[str], raw: RawItemFeatures) -> ItemFeatures:
    """CSR features for items 1..n (item i is item_ids[i-1]); items without a row get none.

    The vocabulary is the sorted set of values the kept items use, so it does not depend on the file format.
    """
    rows = [tuple(dict.fromkeys(raw.values.get(token, ()))) for token in item_ids]
    vocabulary = tuple(sorted({value for row in rows for value in row}))
    index = {value: i + 1 for i, value in enumerate(vocabulary)}
    values = np.fromiter((index[v] for row in rows for v in row), dtype=np.int64)
    lengths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    offsets = np.concatenate([[0, 0], np.cumsum(lengths)]).astype(np.int64)  # row 0 = padding, empty
    return ItemFeatures(name=raw.name, values=values, offsets=offsets, vocabulary=vocabulary)
