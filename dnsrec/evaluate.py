"""Leave-one-out evaluation: Recall/MRR/NDCG@K under the paper's "pop100" protocol and under full ranking.

The spec is docs/method.md, "Evaluation protocol". Everything that does not depend on the model (inputs,
targets, sampled negatives, exclusion sets) is computed once per dataset by `Evaluator`, so evaluating
an epoch costs one scorer pass per batch of users plus a few tensor comparisons; both protocols are read
off the same score matrix.

Ranks are 0-based and ties count AGAINST the target: a user's rank is the number of candidates (target
excluded) whose score is >= the target's. A constant scorer therefore ranks every target last instead of
first, and NaN scores count as -inf (a diverged model scores worst, never best).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import numpy as np
import torch

from dnsrec.data.sequences import SequenceData, Split
from dnsrec.errors import ConfigError, DataError
from dnsrec.files import atomic_write

EvalProtocol = Literal["pop100", "full"]
PROTOCOLS: tuple[EvalProtocol, ...] = get_args(EvalProtocol)
SPLITS: tuple[Split, ...] = get_args(Split)
METRICS = ("recall", "mrr", "ndcg")
N_NEGATIVES = 100
# Bulk rejection rounds before the few users still short of negatives (histories holding most of the
# popularity mass) are finished by sampling their renormalised distribution directly: same distribution,
# bounded time.
_MAX_REJECTION_ROUNDS = 64


class Scorer(Protocol):
    """Scores every item for a batch of histories; any callable of this shape (a model, a closure) fits.

    `seqs` is int64 (B, N), the last N history items right-padded with 0, `lengths` int64 (B,) the number
    of real items. Returns (B, n_items + 1) scores of any float dtype; column 0 (padding) is ignored.
    """

    def __call__(self, seqs: torch.Tensor, lengths: torch.Tensor, /) -> torch.Tensor: ...


@dataclass(frozen=True)
class SplitInputs:
    """What a model sees for one split, one row per user (shared with training code for consistency)."""

    seqs: np.ndarray  # int64 (U, N): last N history items, right-padded with 0
    lengths: np.ndarray  # int64 (U,): real items in seqs (1..N)
    targets: np.ndarray  # int64 (U,): the held-out item


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")


def _history_lengths(data: SequenceData, split: Split) -> np.ndarray:
    """Items before the target: s[:-2] for valid, s[:-1] for test."""
    return data.lengths() - (2 if split == "valid" else 1)


def _prefix(data: SequenceData, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) of the first keep[u] items of every user's sequence, flat and user-major."""
    lengths = data.lengths()
    users = np.repeat(np.arange(data.n_users, dtype=np.int64), lengths)
    position = np.arange(data.n_interactions, dtype=np.int64) - data.offsets[:-1].astype(np.int64)[users]
    chosen = position < keep[users]
    return users[chosen], data.items[chosen].astype(np.int64)


def split_inputs(data: SequenceData, split: Split) -> SplitInputs:
    """Model inputs and targets of a split: the last `data.max_len` history items, right-padded."""
    _check_split(split)
    history = _history_lengths(data, split).astype(np.int64)
    ends = data.offsets[:-1].astype(np.int64) + history  # index of the target in data.items
    lengths = np.minimum(history, data.max_len)
    columns = np.arange(data.max_len, dtype=np.int64)
    real = columns < lengths[:, None]
    index = np.where(real, (ends - lengths)[:, None] + columns, 0)
    seqs = np.where(real, data.items[index], 0).astype(np.int64)
    return SplitInputs(seqs=seqs, lengths=lengths, targets=data.items[ends].astype(np.int64))


def negative_seed(name: str, split: Split) -> int:
    """The fixed pop100 seed of a (dataset, split): stable across runs and processes, unlike hash()."""
    return zlib.crc32(f"dnsrec/pop100/{name}/{split}".encode())


def _contains(sorted_keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    if sorted_keys.size == 0:
        return np.zeros(queries.shape, dtype=bool)
    position = np.minimum(np.searchsorted(sorted_keys, queries), sorted_keys.size - 1)
    found: np.ndarray = sorted_keys[position] == queries
    return found


def _first_occurrences(negatives: np.ndarray) -> np.ndarray:
    """True at the first occurrence of each item in its row, so duplicates count once in a rank."""
    order = np.argsort(negatives, axis=1, kind="stable")
    ordered = np.take_along_axis(negatives, order, axis=1)
    first = np.ones(ordered.shape, dtype=bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    distinct = np.empty_like(first)
    np.put_along_axis(distinct, order, first, axis=1)
    return distinct


def sample_pop100_negatives(
    data: SequenceData, split: Split, n: int = N_NEGATIVES, seed: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Draw n popularity-weighted negatives per user, with replacement, outside the user's items.

    Rejected set: valid = s[:-1] (train + valid target), test = all of s; so the target is never a
    negative. Rejected draws are redrawn (vectorised rounds over all users; users still short after
    `_MAX_REJECTION_ROUNDS` sample the renormalised distribution directly, which is the same law).
    `seed` defaults to `negative_seed(data.name, split)`, independent of any run seed, so every run of
    a dataset ranks against the same negatives. Raises DataError if some user has no item of nonzero
    popularity left to draw (history covers them all; docs/method.md's filtering avoids that).

    Returns (negatives int64 (U, n), distinct bool (U, n)); `distinct` marks the first occurrence of each
    item in a row, so a user is ranked over at most n + 1 distinct items.
    """
    _check_split(split)
    if n < 1:
        raise ConfigError(f"n (negatives per user) must be >= 1, got {n}")
    rng = np.random.default_rng(negative_seed(data.name, split) if seed is None else seed)
    popularity = data.popularity()
    cumulative = np.cumsum(popularity)
    total = float(cumulative[-1])
    if total <= 0:
        raise DataError(f"{data.name}: no item has nonzero popularity, pop100 cannot sample negatives")
    stride = data.n_items + 1
    rejected_users, rejected_items = _prefix(data, data.lengths() - (1 if split == "valid" else 0))
    keys = np.sort(rejected_users * stride + rejected_items)

    negatives = np.zeros(data.n_users * n, dtype=np.int64)
    pending = np.arange(data.n_users * n, dtype=np.int64)  # flat (user, slot) indices still to fill
    for _ in range(_MAX_REJECTION_ROUNDS):
        if pending.size == 0:
            break
        # Item i is drawn when cumulative[i-1] <= x < cumulative[i]: never a zero-popularity item.
        draws = np.searchsorted(cumulative, rng.random(pending.size) * total, side="right")
        rejected = _contains(keys, (pending // n) * stride + draws)
        negatives[pending[~rejected]] = draws[~rejected]
        pending = pending[rejected]

    if pending.size:  # rare: histories holding nearly all the popularity mass
        users, starts, counts = np.unique(pending // n, return_index=True, return_counts=True)
        bounds = np.searchsorted(rejected_users, np.stack([users, users + 1]))
        for user, start, count, lo, hi in zip(users, starts, counts, bounds[0], bounds[1], strict=True):
            allowed = popularity.copy()
            allowed[rejected_items[lo:hi]] = 0.0
            mass = allowed.sum()
            if mass <= 0:
                raise DataError(
                    f"{data.name}: user {user}'s {split} history covers every item with nonzero popularity, "
                    "so pop100 has no negative to draw; filter such users out (as docs/method.md does for Douban)"
                )
            negatives[pending[start : start + count]] = rng.choice(stride, size=count, p=allowed / mass)

    per_user = negatives.reshape(data.n_users, n)
    return per_user, _first_occurrences(per_user)


def ranking_metrics(ranks: np.ndarray, ks: Iterable[int]) -> dict[str, float]:
    """Recall, MRR and NDCG@K averaged over users, from 0-based ranks of a single target each."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, float] = {}
    for k in ks:
        hit = ranks < k
        out[f"recall@{k}"] = float(hit.mean())
        out[f"mrr@{k}"] = float(np.where(hit, 1.0 / (ranks + 1.0), 0.0).mean())
        out[f"ndcg@{k}"] = float(np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0).mean())
    return out


def protocol_metrics(ranks: dict[str, np.ndarray], ks: Iterable[int]) -> dict[str, float]:
    """`ranking_metrics` of each protocol's ranks, keyed "<protocol>/<metric>@<k>"."""
    ks = tuple(ks)
    return {f"{p}/{name}": value for p, r in ranks.items() for name, value in ranking_metrics(r, ks).items()}


def per_user_ndcg(ranks: np.ndarray, k: int) -> np.ndarray:
    """Each user's NDCG@k (one target: 1 / log2(rank + 2) inside the top k, else 0); its mean is ndcg@k."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)


def paired_bootstrap(diff: np.ndarray, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of per-user differences and its 95% percentile-bootstrap interval (users resampled).

    Two models evaluated on the same users and the same negatives differ per user; resampling users keeps
    each pair together, so the interval reflects the gap between the models, not each model's own spread.
    """
    diff = np.asarray(diff, dtype=np.float64)
    if not len(diff):
        raise ValueError("paired_bootstrap needs at least one user")
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for lo in range(0, n_boot, 1000):  # blocks of resamples bound the memory on large user sets
        hi = min(lo + 1000, n_boot)
        means[lo:hi] = diff[rng.integers(0, len(diff), size=(hi - lo, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


RANKS_FILE = "ranks.npz"  # per-user 0-based ranks of the final model, keyed "<split>/<protocol>"


def write_ranks(path: Path, ranks: dict[str, dict[str, np.ndarray]]) -> None:
    """Per-user ranks ({split: {protocol: (n_users,)}}) for paired comparisons between runs; atomic."""
    arrays: dict[str, Any] = {f"{split}/{p}": r.astype(np.int32) for split, by in ranks.items() for p, r in by.items()}
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def read_ranks(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {key: f[key] for key in f.files}


@dataclass(frozen=True)
class _SplitState:
    """One split's precomputed tensors on the evaluation device."""

    seqs: torch.Tensor  # (U, N)
    lengths: torch.Tensor  # (U,)
    targets: torch.Tensor  # (U,)
    negatives: torch.Tensor  # (U, n)
    distinct: torch.Tensor  # bool (U, n)
    n_distinct: torch.Tensor  # (U,) distinct negatives: the worst pop100 rank
    # Full ranking: each user's distinct history items other than the target, flat and user-major.
    excluded_users: torch.Tensor  # (nnz,)
    excluded_items: torch.Tensor  # (nnz,)
    excluded_offsets: np.ndarray  # (U + 1,) host, to slice a batch's entries
    n_candidates: torch.Tensor  # (U,) items the target is ranked against: the worst full rank
    # Users are held sorted by history length (row i is user order[i]) so a batch holds histories of
    # similar length and its right padding can be cut off before scoring; ranks are put back in user order.
    order: np.ndarray  # (U,) host
    widths: np.ndarray  # (U,) host: real items in each row's input


class Evaluator:
    """Evaluates scorers on one dataset; build it once (it precomputes both splits), call it every epoch.

    `ks` are the cut-offs; `batch_size` users are scored at a time, which bounds memory to about
    batch_size * (n_items + 1) scores (plus as many bools) for full ranking. `n_negatives` is the paper's
    100; other values are for experiments only (the keys still say "pop100").
    """

    def __init__(
        self,
        data: SequenceData,
        *,
        ks: Iterable[int] = (10,),
        batch_size: int = 256,
        device: str | torch.device = "cpu",
        n_negatives: int = N_NEGATIVES,
    ) -> None:
        ks = tuple(ks)
        if not ks or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in ks):
            raise ConfigError(f"ks must be a non-empty sequence of positive ints, got {ks!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
        if data.n_users == 0:
            raise DataError(f"{data.name}: no users to evaluate")
        self.data = data
        self.ks: tuple[int, ...] = tuple(sorted(set(ks)))
        self.batch_size = batch_size
        self.device = torch.device(device)
        self._inputs = {split: split_inputs(data, split) for split in SPLITS}
        self._negatives = {split: sample_pop100_negatives(data, split, n_negatives) for split in SPLITS}
        self._state = {split: self._prepare(split) for split in SPLITS}

    def _prepare(self, split: Split) -> _SplitState:
        data = self.data
        inputs, (negatives, distinct) = self._inputs[split], self._negatives[split]
        users, items = _prefix(data, _history_lengths(data, split))
        stride = data.n_items + 1
        keys = np.sort(users * stride + items)  # (user, item), user-major; np.unique is slower (hashing)
        first = np.ones(keys.shape, dtype=bool)
        first[1:] = keys[1:] != keys[:-1]
        keys = keys[first]  # distinct: a repeated history item is excluded once
        users, items = keys // stride, keys % stride
        keep = items != inputs.targets[users]  # the target always keeps its own score
        users, items = users[keep], items[keep]
        order = np.argsort(inputs.lengths, kind="stable")  # row i holds user order[i]
        row_of = np.empty_like(order)
        row_of[order] = np.arange(len(order))
        users = row_of[users]
        regroup = np.argsort(users, kind="stable")  # entries grouped by row, as batches slice them
        users, items = users[regroup], items[regroup]
        n_excluded = np.bincount(users, minlength=data.n_users)
        offsets = np.zeros(data.n_users + 1, dtype=np.int64)
        np.cumsum(n_excluded, out=offsets[1:])

        def put(array: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

        return _SplitState(
            seqs=put(inputs.seqs[order]),
            lengths=put(inputs.lengths[order]),
            targets=put(inputs.targets[order]),
            negatives=put(negatives[order]),
            distinct=put(distinct[order]),
            n_distinct=put(distinct[order].sum(1).astype(np.int64)),
            excluded_users=put(users),
            excluded_items=put(items),
            excluded_offsets=offsets,
            n_candidates=put((data.n_items - 1 - n_excluded).astype(np.int64)),
            order=order,
            widths=inputs.lengths[order],
        )

    def inputs(self, split: Split) -> SplitInputs:
        """The model inputs and targets of a split (host arrays)."""
        _check_split(split)
        return self._inputs[split]

    def negatives(self, split: Split) -> tuple[np.ndarray, np.ndarray]:
        """The split's fixed pop100 (negatives, distinct mask), as `sample_pop100_negatives` returns."""
        _check_split(split)
        return self._negatives[split]

    def evaluate(
        self,
        scorer: Scorer,
        split: Split,
        protocols: Iterable[str] = PROTOCOLS,
    ) -> dict[str, float]:
        """Metrics keyed "<protocol>/<metric>@<k>", e.g. "pop100/ndcg@10", averaged over all users."""
        return protocol_metrics(self.ranks(scorer, split, protocols), self.ks)

    def ranks(
        self,
        scorer: Scorer,
        split: Split,
        protocols: Iterable[str] = PROTOCOLS,
    ) -> dict[str, np.ndarray]:
        """0-based rank of every user's target per protocol, from one scorer pass per batch.

        pop100: number of distinct negatives scoring >= the target. full: number of items 1..n_items
        scoring >= the target, leaving out the user's history items (valid: s[:-2], test: s[:-1]) but
        never the target itself: with repeat consumption (Gowalla check-ins) the target can also be a
        history item, and masking it would make it unrankable. A `torch.nn.Module` scorer is switched to
        eval mode for the pass and restored afterwards.
        """
        _check_split(split)
        chosen = tuple(dict.fromkeys(protocols))
        unknown = [p for p in chosen if p not in PROTOCOLS]
        if unknown or not chosen:
            raise ConfigError(f"protocols must be a non-empty subset of {PROTOCOLS}, got {chosen!r}")
        state = self._state[split]
        collected: dict[str, list[torch.Tensor]] = {p: [] for p in chosen}
        was_training = isinstance(scorer, torch.nn.Module) and scorer.training
        if isinstance(scorer, torch.nn.Module):
            scorer.eval()
        try:
            with torch.no_grad():
                for lo in range(0, self.data.n_users, self.batch_size):
                    hi = min(lo + self.batch_size, self.data.n_users)
                    for protocol, rank in self._batch_ranks(scorer, state, lo, hi, chosen).items():
                        collected[protocol].append(rank)
        finally:
            if isinstance(scorer, torch.nn.Module):
                scorer.train(was_training)
        ranks = {}
        for p in chosen:
            ranks[p] = np.empty(self.data.n_users, dtype=np.int64)
            ranks[p][state.order] = torch.cat(collected[p]).cpu().numpy()
        return ranks

    def _batch_ranks(
        self, scorer: Scorer, state: _SplitState, lo: int, hi: int, protocols: tuple[str, ...]
    ) -> dict[str, torch.Tensor]:
        """Ranks of users lo..hi-1 without copying the score matrix.

        Comparisons run in the scores' own dtype: the target's score comes from the same matrix, so they
        are exact (widening bf16 to float32 cannot change any >=). A NaN candidate never beats a finite
        target (as -inf), and a NaN or -inf target ties with every candidate: worst rank.
        """
        width = int(state.widths[lo:hi].max())  # right padding beyond the longest history changes nothing
        scores = scorer(state.seqs[lo:hi, :width], state.lengths[lo:hi])
        expected = (hi - lo, self.data.n_items + 1)
        if tuple(scores.shape) != expected:
            raise ConfigError(
                f"scorer returned scores of shape {tuple(scores.shape)}, expected {expected} "
                f"(batch, n_items + 1) for dataset {self.data.name}"
            )
        scores = scores.to(self.device)
        target_scores = scores.gather(1, state.targets[lo:hi, None])
        hopeless = (torch.isnan(target_scores) | (target_scores == float("-inf")))[:, 0]
        out: dict[str, torch.Tensor] = {}
        if "pop100" in protocols:
            beaten = (scores.gather(1, state.negatives[lo:hi]) >= target_scores) & state.distinct[lo:hi]
            out["pop100"] = torch.where(hopeless, state.n_distinct[lo:hi], beaten.sum(1))
        if "full" in protocols:
            at_least = (scores[:, 1:] >= target_scores).sum(1)  # counts the target itself once
            a, b = int(state.excluded_offsets[lo]), int(state.excluded_offsets[hi])
            rows = state.excluded_users[a:b] - lo
            excluded = scores[rows, state.excluded_items[a:b]] >= target_scores[rows, 0]
            at_least.index_add_(0, rows, excluded.to(at_least.dtype), alpha=-1)
            out["full"] = torch.where(hopeless, state.n_candidates[lo:hi], at_least - 1)
        return out
