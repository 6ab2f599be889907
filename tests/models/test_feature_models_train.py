"""`dnsrec train model=fdsa|sasrecf` end to end on real ml-100k genres: trains, evaluates, records."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from data_support import require_data

from dnsrec.cli import main
from dnsrec.compose import compose
from dnsrec.config.run import TrainRunConfig
from dnsrec.data import load_dataset
from dnsrec.pipeline import build_model
from dnsrec.results import open_store
from dnsrec.run_result import RunResult

# One epoch of a 1-layer d = 16 model on ml-100k with N = 50: seconds on one core.
TINY_ML100K = [
    "dataset=ml-100k",
    "dataset.max_len=50",
    "model.d=16",
    "model.inner=16",
    "model.layers=1",
    "model.heads=2",
    "batch=4096",
    "train.max_epochs=1",
    "train.progress=false",
]


def shape(family: str, attention: str) -> TrainRunConfig:
    return TrainRunConfig.from_mapping(compose("train", [f"model={family}", f"attention={attention}", *TINY_ML100K]))


@pytest.mark.parametrize(("family", "attention"), [("fdsa", "softmax"), ("sasrecf", "linear")])
def test_cli_trains_a_feature_model_and_records_it(family: str, attention: str, tmp_path: Path) -> None:
    require_data("ml-100k/ml-100k.inter", "ml-100k/ml-100k.item")
    run_dir = tmp_path / family
    assert main(["train", f"model={family}", f"attention={attention}", *TINY_ML100K, f"run_dir={run_dir}"]) == 0
    result = RunResult.read(run_dir / "result.json")
    assert result.config["model"]["family"] == family and result.config["model"]["attention"] == attention
    for split in ("valid", "test"):
        assert len(result.metrics[split]) == 6
        assert all(0.0 <= v <= 1.0 for v in result.metrics[split].values()), result.metrics[split]
    assert result.metrics["test"]["pop100/ndcg@10"] > 0  # it ranked something
    # the model trained is the family asked for: its parameter count, which differs from SASRec's of that shape
    data = load_dataset("ml-100k", max_len=50)
    n_params = {
        fam: sum(p.numel() for p in build_model(shape(fam, attention).model, data).parameters())
        for fam in (family, "sasrec")
    }
    assert result.n_params == n_params[family] != n_params["sasrec"]

    store = open_store(os.environ["DNSREC_DB_URL"])
    try:
        (recorded,) = [r for r in store.list_runs() if Path(r.run_dir).resolve() == run_dir.resolve()]
    finally:
        store.close()
    assert recorded.config["model"]["family"] == family
    assert recorded.metrics["test/pop100/ndcg@10"] == pytest.approx(result.metrics["test"]["pop100/ndcg@10"])
