"""Every run leaves its users' ranks beside result.json, and they are the ranks its metrics came from."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_runs import TINY_TRAIN

from dnsrec.compose import compose
from dnsrec.config.run import TrainRunConfig
from dnsrec.data import load_dataset
from dnsrec.evaluate import RANKS_FILE, per_user_ndcg, ranking_metrics, read_ranks
from dnsrec.pipeline import train_run


def test_ranks_file_reproduces_the_recorded_metrics(tmp_path: Path) -> None:
    cfg = TrainRunConfig.from_mapping(compose("train", [*TINY_TRAIN, "train.max_epochs=1"]))
    result = train_run(cfg, tmp_path, log=lambda _: None)
    ranks = read_ranks(tmp_path / RANKS_FILE)
    n_users = load_dataset("gowalla-100").n_users
    assert sorted(ranks) == ["test/full", "test/pop100", "valid/full", "valid/pop100"]
    for key, r in ranks.items():
        split, protocol = key.split("/")
        assert len(r) == n_users  # one rank per user
        for name, value in ranking_metrics(r, [10]).items():
            assert result.metrics[split][f"{protocol}/{name}"] == pytest.approx(value, abs=1e-12)
        assert per_user_ndcg(r, 10).mean() == pytest.approx(result.metrics[split][f"{protocol}/ndcg@10"])
