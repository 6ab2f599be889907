"""Ordering, filtering and remapping, each checked against a plain-Python computation written here."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dnsrec.data.process import Filter, build_sequences
from dnsrec.data.raw import RawInteractions, RawItemFeatures, Tokens
from dnsrec.data.sequences import SequenceData
from dnsrec.errors import DataError


def raw(
    users: list[str],
    items: list[str],
    times: list[float] | None,
    newest_first: bool = False,
) -> RawInteractions:
    t = None if times is None else np.array(times, dtype=np.float64)
    return RawInteractions(Tokens.encode(users), Tokens.encode(items), t, "test", newest_first)


def token_sequences(data: SequenceData) -> list[list[str]]:
    ids = ("<pad>", *data.item_ids)
    return [[ids[i] for i in data.sequence(u)] for u in range(data.n_users)]


def build(r: RawInteractions, filtering: Filter | None = None) -> SequenceData:
    return build_sequences(r, None, name="t", max_len=5, filtering=filtering or Filter())


def test_stable_time_order_keeps_file_order_among_ties() -> None:
    r = raw(["a", "a", "a", "b", "b", "b", "a"], ["5", "3", "4", "1", "2", "3", "6"], [9, 2, 2, 1, 1, 0, 2])
    assert token_sequences(build(r)) == [["3", "4", "6", "5"], ["3", "1", "2"]]


def test_newest_first_files_reverse_ties() -> None:
    """Gowalla lists each user newest first, so equal times go in reversed file order."""
    r = raw(["a", "a", "a", "a"], ["9", "8", "7", "6"], [5, 2, 2, 1], newest_first=True)
    assert token_sequences(build(r)) == [["6", "7", "8", "9"]]


def test_no_timestamps_keep_file_order_and_users_go_by_first_appearance() -> None:
    r = raw(["z", "y", "z", "y", "z", "y", "x", "x"], ["1", "2", "3", "4", "5", "1", "1", "2"], None)
    data = build(r)
    assert token_sequences(data) == [["1", "3", "5"], ["2", "4", "1"]]  # x has 2 items: dropped
    assert data.item_ids == ("1", "3", "5", "2", "4")  # item ids by first appearance in the sequences


def random_raw(seed: int, n: int = 3000, n_users: int = 80, n_items: int = 150) -> RawInteractions:
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, n) ** 2 % n_users  # skewed activity
    items = (rng.zipf(1.3, n) % n_items).astype(np.int64)
    times = rng.integers(0, 50, n).astype(np.float64)  # many ties
    return RawInteractions(Tokens.encode(users.astype(str)), Tokens.encode(items.astype(str)), times, "rand")


def reference(r: RawInteractions, k: int) -> list[tuple[str, list[str]]]:
    """Plain Python: iterative k-core, users < 3 out, stable time sort, users by first appearance."""
    assert r.times is not None
    rows = list(zip(r.users.values().tolist(), r.items.values().tolist(), r.times.tolist(), strict=True))
    while True:
        users, items = Counter(u for u, _, _ in rows), Counter(i for _, i, _ in rows)
        kept = [row for row in rows if users[row[0]] >= k and items[row[1]] >= k]
        if len(kept) == len(rows):
            break
        rows = kept
    per_user: dict[str, list[tuple[float, str]]] = {}
    for u, i, t in rows:
        per_user.setdefault(u, []).append((t, i))
    return [(u, [i for _, i in sorted(s, key=lambda x: x[0])]) for u, s in per_user.items() if len(s) >= 3]


@pytest.mark.parametrize("k", [0, 3, 5])
def test_kcore_matches_plain_python_and_is_a_fixed_point(k: int) -> None:
    r = random_raw(seed=k)
    data = build(r, Filter(min_user=k, min_item=k))
    expected = reference(r, k)
    assert token_sequences(data) == [s for _, s in expected]
    assert data.lengths().min() >= max(3, k) and np.bincount(data.items)[1:].min() >= k
    users, items = flatten(data)
    again = build(RawInteractions(Tokens.encode(users), Tokens.encode(items), None, "again"), Filter(k, k))
    assert token_sequences(again) == token_sequences(data)  # filtering the result removes nothing more


def flatten(data: SequenceData) -> tuple[np.ndarray, np.ndarray]:
    users = np.repeat(np.arange(data.n_users), data.lengths()).astype(str)
    return users, np.array(("<pad>", *data.item_ids))[data.items]


def test_ids_are_contiguous_and_leave_one_out_fits() -> None:
    data = build(random_raw(seed=7), Filter(min_user=2, min_item=2))
    assert data.items.min() == 1 and set(np.unique(data.items)) == set(range(1, data.n_items + 1))
    _, first = np.unique(data.items, return_index=True)
    assert (np.diff(first) > 0).all()  # item i+1 first appears after item i
    assert len(set(data.item_ids)) == data.n_items
    assert data.offsets[0] == 0 and data.offsets[-1] == data.n_interactions and data.lengths().min() >= 3
    train = [data.sequence(u)[:-2] for u in range(data.n_users)]
    assert all(len(t) >= 1 for t in train)
    assert sum(map(len, train)) + 2 * data.n_users == data.n_interactions


def test_popularity_counts_every_interaction_but_each_users_first() -> None:
    data = build(random_raw(seed=3))
    counts: Counter[int] = Counter()
    for u in range(data.n_users):
        counts.update(data.sequence(u)[1:].tolist())
    expected = np.array([counts[i] for i in range(data.n_items + 1)], dtype=np.float64)
    expected[0] = 0
    np.testing.assert_array_equal(data.popularity(), expected)


def test_douban_rule_drops_users_who_rated_everything() -> None:
    items = [str(i) for i in range(6)]
    full = [("full", i) for i in items]  # rated every item
    rest = [(f"u{n}", items[j]) for n in range(8) for j in range(6) if (n + j) % 6 != 0]
    users, its = zip(*(full + rest), strict=True)
    r = raw(list(users), list(its), list(range(len(users))))
    data = build_sequences(r, None, name="d", max_len=5, filtering=Filter(5, 5, drop_full_users=True))
    assert data.n_users == 8 and data.n_items == 6  # "full" went; each other user lacks one item
    plain = build_sequences(r, None, name="d", max_len=5, filtering=Filter(5, 5))
    assert plain.n_users == 9


def test_item_features_csr() -> None:
    r = raw(["a"] * 4, ["m1", "m2", "m3", "m1"], [1, 2, 3, 4])
    values = {"m1": ("Drama", "Comedy"), "m3": ("Drama", "Drama"), "other": ("War",)}
    genres = RawItemFeatures("genre", values, "t")
    data = build_sequences(r, genres, name="f", max_len=5)
    f = data.item_features
    assert f is not None and f.name == "genre" and f.vocabulary == ("Comedy", "Drama")  # only used values
    assert len(f.offsets) == data.n_items + 2 and len(f.of(0)) == 0
    assert [[f.vocabulary[v - 1] for v in f.of(i)] for i in range(1, 4)] == [
        ["Drama", "Comedy"],
        [],
        ["Drama"],
    ]


def test_nothing_left_is_an_error() -> None:
    with pytest.raises(DataError, match="no user has 3 interactions"):
        build(raw(["a", "a"], ["1", "2"], [1, 2]))
