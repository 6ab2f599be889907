"""benchmarks/popularity_bias.py's numbers against a per-user loop written out here."""

from __future__ import annotations

import importlib.util
import statistics
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from dnsrec.data import SequenceData
from dnsrec.evaluate import split_inputs

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "popularity_bias.py"
spec = importlib.util.spec_from_file_location("popularity_bias", SCRIPT)
assert spec is not None and spec.loader is not None
bias = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bias)


def toy_data(n_users: int = 40, n_items: int = 300, max_len: int = 12, seed: int = 0) -> SequenceData:
    rng = np.random.default_rng(seed)
    weights = rng.pareto(1.0, n_items) + 0.01  # skewed popularity, with repeated counts
    lengths = rng.integers(4, 30, n_users)
    items = np.concatenate([rng.choice(n_items, size=n, p=weights / weights.sum()) + 1 for n in lengths])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return SequenceData(name="toy", n_items=n_items, max_len=max_len, items=items, offsets=offsets)


class FixedScores(torch.nn.Module):
    """Scores that depend on the item and on the input's length, so users differ."""

    def __init__(self, n_items: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.base, self.slope = torch.rand(n_items + 1, generator=g), torch.rand(n_items + 1, generator=g)

    def score(self, seqs: Tensor, lengths: Tensor) -> Tensor:
        return self.base + lengths[:, None].float() * 0.05 * self.slope


def test_percentile_is_the_share_of_items_with_a_smaller_count() -> None:
    popularity = np.array([0.0, 3, 1, 3, 0, 7, 1])  # index 0 padding; ties and a zero count
    expected = [sum(c < popularity[i] for c in popularity[1:]) / 6 for i in range(7)]
    assert bias.popularity_percentile(popularity).tolist() == expected


def test_popularity_of_recommendations_matches_a_per_user_loop() -> None:
    data, k = toy_data(), 10
    model = FixedScores(data.n_items)
    popularity = data.popularity()
    percentile = bias.popularity_percentile(popularity)
    top = set(np.argsort(-popularity[1:], kind="stable")[: bias.TOP_POPULAR] + 1)
    inputs = split_inputs(data, "test")
    pct, among = [], []
    for u in range(data.n_users):
        seen = set(inputs.seqs[u, : inputs.lengths[u]].tolist())
        scores = model.score(torch.from_numpy(inputs.seqs[u : u + 1]), torch.tensor([inputs.lengths[u]]))[0]
        candidates = [i for i in range(1, data.n_items + 1) if i not in seen]
        best = sorted(candidates, key=lambda i: -float(scores[i]))[:k]
        pct += [percentile[i] for i in best]
        among += [i in top for i in best]
    got = bias.popularity_of_recommendations(model, data, k, batch=7)  # batches that do not divide the users
    assert got[0] == pytest.approx(np.mean(pct), abs=1e-12)
    assert got[1] == np.mean(among)


def test_summary_gives_mean_sd_and_correlations(capsys: pytest.CaptureFixture[str]) -> None:
    data = toy_data()
    rows = [(0.80, 0.30, 0.31, 0.09), (0.84, 0.35, 0.29, 0.10), (0.82, 0.32, 0.30, 0.11)]
    bias.summarise("toy", data, np.array(rows))
    out = capsys.readouterr().out
    pct, top, pop100, full = (list(c) for c in zip(*rows, strict=True))
    assert f"popularity percentile {statistics.mean(pct):.4f} ± {statistics.stdev(pct):.4f}" in out
    assert f"among the 100 most popular {statistics.mean(top):.4f} ± {statistics.stdev(top):.4f}" in out
    r_pop, r_full = statistics.correlation(pct, pop100), statistics.correlation(pct, full)
    assert f"with test pop100 NDCG@10 {r_pop:+.2f}, with full {r_full:+.2f}" in out
