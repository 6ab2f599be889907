"""Tests of dnsrec.evaluate: every number is checked against slow, obviously-correct per-user loops."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import dnsrec.evaluate as evaluate_module
from dnsrec.data.sequences import SequenceData, Split
from dnsrec.errors import ConfigError, DataError
from dnsrec.evaluate import (
    Evaluator,
    SplitInputs,
    negative_seed,
    paired_bootstrap,
    per_user_ndcg,
    ranking_metrics,
    read_ranks,
    sample_pop100_negatives,
    split_inputs,
    write_ranks,
)

DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"
ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Ranks = dict[str, list[int]]


# ---------------------------------------------------------------- data


def make_data(sequences: list[list[int]], n_items: int, max_len: int = 8, name: str = "toy") -> SequenceData:
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences])]).astype(np.int64)
    items = np.array([i for s in sequences for i in s], dtype=np.int64)
    return SequenceData(name=name, n_items=n_items, max_len=max_len, items=items, offsets=offsets)


def random_data(
    n_users: int = 60, n_items: int = 40, max_length: int = 25, seed: int = 0, name: str = "synthetic"
) -> SequenceData:
    """Zipf-skewed items (so negatives repeat), repeats within a user, histories longer than max_len."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1) ** 1.2
    weights /= weights.sum()
    sequences = [
        list(rng.choice(np.arange(1, n_items + 1), size=int(rng.integers(3, max_length + 1)), p=weights))
        for _ in range(n_users)
    ]
    return make_data(sequences, n_items, name=name)


def parse_ml100k(path: Path) -> SequenceData:
    """A tiny RecBole .inter parser (used only while dnsrec.data.load_dataset is not there)."""
    rows: dict[str, list[tuple[float, int, str]]] = {}
    with path.open() as f:
        next(f)
        for line_no, line in enumerate(f):
            user, item, _rating, timestamp = line.rstrip("\n").split("\t")
            rows.setdefault(user, []).append((float(timestamp), line_no, item))
    item_ids: dict[str, int] = {}
    sequences = []
    for user in sorted(rows, key=int):
        sequence = [item_ids.setdefault(item, len(item_ids) + 1) for _, _, item in sorted(rows[user])]
        sequences.append(sequence)
    return make_data(sequences, len(item_ids), max_len=200, name="ml-100k")


@pytest.fixture(scope="module")
def ml100k(tmp_path_factory: pytest.TempPathFactory) -> SequenceData:
    try:
        from dnsrec.data import load_dataset
    except ImportError:
        return parse_ml100k(DATA_DIR / "ml-100k" / "ml-100k.inter")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DNSREC_DATA_DIR", str(DATA_DIR))
        mp.setenv("DNSREC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        data: SequenceData = load_dataset("ml-100k")
        return data


# ---------------------------------------------------------------- scorers


def table_scorer(n_items: int, levels: int = 4, seed: int = 0, dtype: torch.dtype = torch.float32) -> ScoreFn:
    """Sum of random integer table rows over the inputs (+ the last item, + length): exact, many ties."""
    generator = torch.Generator().manual_seed(seed)
    table = torch.randint(0, levels, (n_items + 1, n_items + 1), generator=generator).float()
    table[0] = 0.0

    def score(seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        counts = torch.zeros(seqs.shape[0], n_items + 1).scatter_add_(1, seqs, torch.ones(seqs.shape))
        counts[:, 0] = 0.0
        last = seqs[torch.arange(seqs.shape[0]), lengths - 1]  # right padding: the last real item
        return (counts @ table + 2 * table[last] + lengths[:, None].float() * table[1]).to(dtype)

    return score


def random_scorer(n_items: int, seed: int = 0) -> ScoreFn:
    generator = torch.Generator().manual_seed(seed)

    def score(seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.rand(seqs.shape[0], n_items + 1, generator=generator)

    return score


def oracle_scorer(inputs: SplitInputs, n_items: int) -> ScoreFn:
    """Knows each history's target (looked up by the history itself, whatever order users come in)."""
    target_of = {
        tuple(inputs.seqs[u, : inputs.lengths[u]].tolist()): int(inputs.targets[u]) for u in range(len(inputs.targets))
    }
    assert len(target_of) == len(inputs.targets), "histories must be unique for an oracle"

    def score(seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        rows = [tuple(seqs[i, : lengths[i]].tolist()) for i in range(seqs.shape[0])]
        scores = torch.zeros(seqs.shape[0], n_items + 1)
        scores[torch.arange(seqs.shape[0]), torch.tensor([target_of[r] for r in rows])] = 1.0
        return scores

    return score


# ---------------------------------------------------------------- references


def reference_split(data: SequenceData, split: Split, user: int) -> tuple[list[int], int]:
    sequence = [int(i) for i in data.sequence(user)]
    return (sequence[:-2], sequence[-2]) if split == "valid" else (sequence[:-1], sequence[-1])


def reference_ranks(data: SequenceData, split: Split, scorer: ScoreFn, negatives: np.ndarray) -> Ranks:
    ranks: Ranks = {"pop100": [], "full": []}
    for user in range(data.n_users):
        history, target = reference_split(data, split, user)
        window = history[-data.max_len :]
        seq = torch.zeros(1, data.max_len, dtype=torch.long)
        seq[0, : len(window)] = torch.tensor(window)
        raw = scorer(seq, torch.tensor([len(window)])).float()[0].tolist()
        score = [-math.inf if math.isnan(x) else x for x in raw]

        def rank_of(candidates: set[int], target: int = target, score: list[float] = score) -> int:
            # Ties sort the target after the candidates it ties with.
            ordered = sorted(candidates, key=lambda c: (-score[c], c == target))
            return ordered.index(target)

        ranks["pop100"].append(rank_of({target} | {int(i) for i in negatives[user]}))
        in_history = set(history)
        full = {i for i in range(1, data.n_items + 1) if i not in in_history or i == target}
        ranks["full"].append(rank_of(full))
    return ranks


def reference_metrics(ranks: list[int], ks: tuple[int, ...]) -> dict[str, float]:
    out = {}
    for k in ks:
        out[f"recall@{k}"] = sum(1 for r in ranks if r < k) / len(ranks)
        out[f"mrr@{k}"] = sum(1 / (r + 1) for r in ranks if r < k) / len(ranks)
        out[f"ndcg@{k}"] = sum(1 / math.log2(r + 2) for r in ranks if r < k) / len(ranks)
    return out


def check_against_reference(evaluator: Evaluator, scorer: ScoreFn, split: Split) -> None:
    data = evaluator.data
    negatives, _ = evaluator.negatives(split)
    expected_ranks = reference_ranks(data, split, scorer, negatives)
    assert {p: r.tolist() for p, r in evaluator.ranks(scorer, split).items()} == expected_ranks
    metrics = evaluator.evaluate(scorer, split)
    expected = {
        f"{p}/{name}": value
        for p in ("pop100", "full")
        for name, value in reference_metrics(expected_ranks[p], evaluator.ks).items()
    }
    assert metrics.keys() == expected.keys()
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-12), key


# ---------------------------------------------------------------- inputs


@pytest.mark.parametrize("split", ["valid", "test"])
def test_split_inputs_are_the_last_max_len_history_items_right_padded(split: Split) -> None:
    data = random_data()
    inputs = split_inputs(data, split)
    assert inputs.seqs.shape == (data.n_users, data.max_len)
    assert inputs.seqs.dtype == np.int64
    for user in range(data.n_users):
        history, target = reference_split(data, split, user)
        window = history[-data.max_len :]
        assert inputs.seqs[user].tolist() == window + [0] * (data.max_len - len(window))
        assert inputs.lengths[user] == len(window)
        assert inputs.targets[user] == target


# ---------------------------------------------------------------- negatives


@pytest.mark.parametrize("split", ["valid", "test"])
def test_negatives_avoid_the_history_and_the_target(split: Split) -> None:
    data = random_data()
    negatives, distinct = sample_pop100_negatives(data, split)
    assert negatives.shape == distinct.shape == (data.n_users, 100)
    assert negatives.dtype == np.int64
    assert distinct.dtype == np.bool_
    popularity = data.popularity()
    for user in range(data.n_users):
        sequence = [int(i) for i in data.sequence(user)]
        rejected = set(sequence[:-1] if split == "valid" else sequence)
        row = negatives[user].tolist()
        assert not rejected & set(row)
        assert reference_split(data, split, user)[1] not in row
        assert all(popularity[i] > 0 for i in row)
        seen: set[int] = set()
        first = []
        for item in row:
            first.append(item not in seen)
            seen.add(item)
        assert distinct[user].tolist() == first


def test_negatives_are_drawn_with_replacement_and_duplicates_collapse() -> None:
    data = random_data()
    negatives, distinct = sample_pop100_negatives(data, "test")
    # 40 items and 100 draws: every row repeats, and each item is counted once.
    assert (~distinct).any(axis=1).all()
    assert (distinct.sum(1) == [len(set(row)) for row in negatives.tolist()]).all()
    assert distinct.sum(1).max() <= data.n_items


def test_negatives_are_fixed_per_dataset_and_split() -> None:
    data = random_data()
    valid_a, _ = sample_pop100_negatives(data, "valid")
    valid_b, _ = sample_pop100_negatives(data, "valid")
    test_a, _ = sample_pop100_negatives(data, "test")
    assert np.array_equal(valid_a, valid_b)
    assert negative_seed(data.name, "valid") != negative_seed(data.name, "test")
    assert negative_seed("other", "valid") != negative_seed(data.name, "valid")
    assert not np.array_equal(valid_a, test_a)
    seeded_a, _ = sample_pop100_negatives(data, "valid", seed=7)
    seeded_b, _ = sample_pop100_negatives(data, "valid", seed=7)
    assert np.array_equal(seeded_a, seeded_b)
    assert not np.array_equal(seeded_a, valid_a)
    # A different name is a different dataset: different negatives, same data.
    renamed = make_data([list(data.sequence(u)) for u in range(data.n_users)], data.n_items, name="renamed")
    assert not np.array_equal(sample_pop100_negatives(renamed, "valid")[0], valid_a)
    # Evaluator uses the same fixed negatives.
    assert np.array_equal(Evaluator(data).negatives("valid")[0], valid_a)


def expected_negative_frequencies(data: SequenceData, split: Split, n: int) -> np.ndarray:
    """Expected counts: popularity restricted to items outside each user's rejected set, renormalised."""
    popularity = data.popularity()
    expected = np.zeros(data.n_items + 1)
    for user in range(data.n_users):
        sequence = [int(i) for i in data.sequence(user)]
        allowed = popularity.copy()
        allowed[sequence[:-1] if split == "valid" else sequence] = 0.0
        expected += n * allowed / allowed.sum()
    return expected


def chi_square(observed: np.ndarray, expected: np.ndarray) -> tuple[float, int]:
    cells = expected > 0
    assert observed[~cells].sum() == 0
    return float(((observed[cells] - expected[cells]) ** 2 / expected[cells]).sum()), int(cells.sum()) - 1


@pytest.mark.parametrize("rounds", [64, 1])
def test_negatives_follow_popularity(rounds: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Empirical frequencies match popularity conditioned on each user's history (chi-square, ~200k draws).

    rounds=1 sends most slots through the exact per-user fallback, which must follow the same law.
    """
    monkeypatch.setattr(evaluate_module, "_MAX_REJECTION_ROUNDS", rounds)
    data = random_data(n_users=2000, n_items=50, max_length=12, seed=3)
    negatives, _ = sample_pop100_negatives(data, "valid")
    observed = np.bincount(negatives.ravel(), minlength=data.n_items + 1).astype(np.float64)
    statistic, dof = chi_square(observed, expected_negative_frequencies(data, "valid", 100))
    assert statistic < dof + 6 * math.sqrt(2 * dof), (statistic, dof)


def test_a_history_holding_almost_all_popularity_still_gets_valid_negatives() -> None:
    # Item 9 is popular only through one interaction, the rest of the mass is in user 0's history.
    hog = [1, 2, 3, 4, 5, 6, 7, 8] * 50
    data = make_data([hog, [1, 9, 2], [2, 3, 4]], n_items=9)
    negatives, distinct = sample_pop100_negatives(data, "test")
    assert set(negatives[0].tolist()) == {9}
    assert distinct[0].sum() == 1


def test_a_history_covering_every_popular_item_is_a_clear_error() -> None:
    data = make_data([[1, 2, 3, 4], [1, 2, 3], [2, 3, 4]], n_items=5)  # item 5 has zero popularity
    with pytest.raises(DataError, match="user 0"):
        sample_pop100_negatives(data, "test")


def test_sampling_at_gowalla_scale() -> None:
    """Gowalla-sized: 64k users, 160k items, skewed popularity (speed is measured by benchmarks, not here)."""
    rng = np.random.default_rng(0)
    n_users, n_items = 64_000, 160_000
    lengths = rng.integers(3, 30, size=n_users)
    items = (rng.zipf(1.3, size=int(lengths.sum())) % n_items) + 1
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    data = SequenceData(name="big", n_items=n_items, max_len=50, items=items, offsets=offsets)
    negatives, _ = sample_pop100_negatives(data, "valid")
    assert negatives.shape == (n_users, 100)
    users = np.repeat(np.arange(n_users), 100)
    history = set(zip(np.repeat(np.arange(n_users), lengths - 1).tolist(), _valid_history(data).tolist(), strict=True))
    assert not any((u, i) in history for u, i in zip(users.tolist(), negatives.ravel().tolist(), strict=True))


def _valid_history(data: SequenceData) -> np.ndarray:
    """Every user's s[:-1] (train + valid items), flat and user-major."""
    return np.concatenate([data.sequence(u)[:-1] for u in range(data.n_users)])


# ---------------------------------------------------------------- ranking


@pytest.mark.parametrize("split", ["valid", "test"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_metrics_equal_the_reference_on_synthetic_data(split: Split, dtype: torch.dtype) -> None:
    data = random_data()
    evaluator = Evaluator(data, ks=(1, 5, 10), batch_size=7)
    check_against_reference(evaluator, table_scorer(data.n_items, dtype=dtype), split)


@pytest.mark.parametrize("split", ["valid", "test"])
def test_metrics_equal_the_reference_on_ml100k(ml100k: SequenceData, split: Split) -> None:
    evaluator = Evaluator(ml100k, ks=(1, 5, 10), batch_size=100)
    check_against_reference(evaluator, table_scorer(ml100k.n_items, levels=6), split)


def test_ties_count_against_the_target() -> None:
    data = random_data()
    evaluator = Evaluator(data, ks=(1, 5, 10))
    constant = evaluator.ranks(lambda s, n: torch.zeros(s.shape[0], data.n_items + 1), "test")
    _, distinct = evaluator.negatives("test")
    assert constant["pop100"].tolist() == distinct.sum(1).tolist()
    n_history = [len(set(reference_split(data, "test", u)[0])) for u in range(data.n_users)]
    targets = evaluator.inputs("test").targets
    in_history = [int(targets[u]) in reference_split(data, "test", u)[0] for u in range(data.n_users)]
    expected_full = [data.n_items - h - 1 + keep for h, keep in zip(n_history, in_history, strict=True)]
    assert constant["full"].tolist() == expected_full
    metrics = evaluator.evaluate(lambda s, n: torch.zeros(s.shape[0], data.n_items + 1), "test")
    assert metrics["full/recall@10"] == 0.0
    assert metrics["full/ndcg@10"] == 0.0
    # NaN scores rank like -inf: a diverged model scores worst, never best.
    nan_ranks = evaluator.ranks(lambda s, n: torch.full((s.shape[0], data.n_items + 1), math.nan), "test")
    assert nan_ranks["full"].tolist() == expected_full
    assert nan_ranks["pop100"].tolist() == distinct.sum(1).tolist()


def test_full_ranking_excludes_history_but_keeps_a_repeated_target() -> None:
    # User 0: valid history [5], target 3; test history [5, 3], target 5 (a repeat).
    data = make_data([[5, 3, 5], [1, 2, 4, 6]], n_items=6)
    evaluator = Evaluator(data, ks=(1, 2, 3))

    def by_id(seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return torch.arange(data.n_items + 1, dtype=torch.float32).expand(seqs.shape[0], -1)

    # valid, user 0: candidates 1, 2, 3, 4, 6 (5 masked): 4 and 6 beat 3. User 1: history [1, 2], target 4:
    # candidates 3, 4, 5, 6: rank 2.
    assert evaluator.ranks(by_id, "valid", ["full"])["full"].tolist() == [2, 2]
    # test, user 0: 3 is masked, 5 is the target and kept: only 6 beats it. User 1: history [1, 2, 4],
    # target 6: rank 0.
    assert evaluator.ranks(by_id, "test", ["full"])["full"].tolist() == [1, 0]
    metrics = evaluator.evaluate(by_id, "test", ["full"])
    assert metrics == pytest.approx(
        {"full/recall@1": 0.5, "full/mrr@1": 0.5, "full/ndcg@1": 0.5}
        | {f"full/recall@{k}": 1.0 for k in (2, 3)}
        | {f"full/mrr@{k}": 0.75 for k in (2, 3)}
        | {f"full/ndcg@{k}": (1 + 1 / math.log2(3)) / 2 for k in (2, 3)}
    )


def test_random_scorer_gets_the_chance_level(ml100k: SequenceData) -> None:
    evaluator = Evaluator(ml100k, batch_size=128)
    _, distinct = evaluator.negatives("test")
    expected = np.minimum(1.0, 10.0 / (distinct.sum(1) + 1)).mean()
    # About 10/101; a little more because popular negatives repeat (ml-100k: ~8 duplicates per user).
    assert 10 / 101 <= expected < 0.12
    recalls = [
        evaluator.evaluate(random_scorer(ml100k.n_items, seed), "test", ["pop100"])["pop100/recall@10"]
        for seed in range(5)
    ]
    # Standard error of the mean of 5 x 943 Bernoulli(0.1) ~ 0.0044.
    assert np.mean(recalls) == pytest.approx(expected, abs=0.015)


@pytest.mark.parametrize("split", ["valid", "test"])
def test_oracle_scorer_is_perfect(ml100k: SequenceData, split: Split) -> None:
    evaluator = Evaluator(ml100k, ks=(1, 10), batch_size=300)
    metrics = evaluator.evaluate(oracle_scorer(evaluator.inputs(split), ml100k.n_items), split)
    assert len(metrics) == 12
    assert all(value == 1.0 for value in metrics.values())


def test_ranking_metrics_formula() -> None:
    assert ranking_metrics(np.array([0, 1, 4, 20]), [5]) == pytest.approx(
        {
            "recall@5": 3 / 4,
            "mrr@5": (1 + 1 / 2 + 1 / 5) / 4,
            "ndcg@5": (1 + 1 / math.log2(3) + 1 / math.log2(6)) / 4,
        }
    )


def test_module_scorer_is_evaluated_in_eval_mode_and_restored() -> None:
    data = random_data()

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(data.n_items + 1, 4)
            self.modes: list[bool] = []

        def forward(self, seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            self.modes.append(self.training)
            scores: torch.Tensor = self.embedding(seqs).sum(1) @ self.embedding.weight.T
            return scores

    model = Model().train()
    metrics = Evaluator(data).evaluate(model, "valid")
    assert model.training
    assert model.modes
    assert not any(model.modes)
    assert set(metrics) == {f"{p}/{m}@10" for p in ("pop100", "full") for m in ("recall", "mrr", "ndcg")}


def test_bad_options_are_config_errors() -> None:
    data = random_data()
    with pytest.raises(ConfigError, match="ks"):
        Evaluator(data, ks=())
    with pytest.raises(ConfigError, match="ks"):
        Evaluator(data, ks=(0, 10))
    with pytest.raises(ConfigError, match="batch_size"):
        Evaluator(data, batch_size=0)
    evaluator = Evaluator(data)
    scorer = table_scorer(data.n_items)
    with pytest.raises(ConfigError, match="split"):
        evaluator.evaluate(scorer, "train")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="protocols"):
        evaluator.evaluate(scorer, "test", ["pop50"])
    with pytest.raises(ConfigError, match="shape"):
        evaluator.evaluate(lambda s, n: torch.zeros(s.shape[0], data.n_items), "test")
    with pytest.raises(ConfigError, match="negatives"):
        sample_pop100_negatives(data, "test", n=0)


# ---------------------------------------------------------------- paired comparisons


def test_per_user_ndcg_averages_to_the_metric() -> None:
    ranks = np.array([0, 3, 9, 10, 250])
    assert per_user_ndcg(ranks, 10).tolist() == pytest.approx([1.0, 1 / math.log2(5), 1 / math.log2(11), 0.0, 0.0])
    assert per_user_ndcg(ranks, 10).mean() == pytest.approx(ranking_metrics(ranks, [10])["ndcg@10"])


def test_paired_bootstrap_interval_matches_the_normal_approximation() -> None:
    diff = np.random.default_rng(1).normal(0.02, 0.3, size=4000)
    mean, low, high = paired_bootstrap(diff, n_boot=4000)
    half = 1.96 * diff.std(ddof=1) / math.sqrt(len(diff))  # independent: the central limit theorem
    assert mean == pytest.approx(diff.mean())
    assert low == pytest.approx(mean - half, abs=0.15 * half) and high == pytest.approx(mean + half, abs=0.15 * half)


def test_ranks_file_round_trips(tmp_path: Path) -> None:
    ranks = {"test": {"pop100": np.array([0, 5, 100]), "full": np.array([3, 1600, 7])}}
    write_ranks(tmp_path / "ranks.npz", ranks)
    back = read_ranks(tmp_path / "ranks.npz")
    assert sorted(back) == ["test/full", "test/pop100"] and back["test/full"].tolist() == [3, 1600, 7]
    assert [p.name for p in tmp_path.iterdir()] == ["ranks.npz"]
