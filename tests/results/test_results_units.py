"""The store's pure parts, without a database: validation and extraction, the Pareto front against brute
force, URL masking, and the CLI's never-lose-the-run recording."""

from __future__ import annotations

import math
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dnsrec.cli import main
from dnsrec.recording import DbOptions, record
from dnsrec.results import MetricKey, QueryError, SlurmInfo, open_store
from dnsrec.results.database import mask_text, resolve_url
from dnsrec.results.extract import architecture_values, key_parameters, problems
from dnsrec.results.pareto import dominated, front


def test_metric_keys() -> None:
    key = MetricKey.parse("test/pop100/ndcg@10")
    assert (key.split, key.protocol, key.metric, key.k) == ("test", "pop100", "ndcg", 10)
    assert str(key) == "test/pop100/ndcg@10"
    for bad in ("ndcg@10", "test/ndcg", "test/pop100/ndcg@", "test/pop100/ndcg@10; DROP"):
        with pytest.raises(QueryError, match="SPLIT/PROTOCOL/METRIC@K"):
            MetricKey.parse(bad)


def test_problems_name_every_defect(make_result: Any) -> None:
    assert problems(make_result()) == []
    bad = make_result(schema_version=2, stage="guess", n_params=-1, seconds={"search": math.nan})
    bad.metrics["valid"]["pop100/ndcg@10"] = math.inf
    bad.metrics["test"]["weird"] = 0.1
    found = "; ".join(problems(bad))
    for phrase in (
        "schema_version 2",
        "stage 'guess'",
        "n_params -1",
        "seconds.search nan",
        "valid/pop100/ndcg@10 = inf",
        "test/weird is not",
    ):
        assert phrase in found
    assert "required metrics missing: test/pop100/ndcg@10, test/full/ndcg@10" in "; ".join(
        problems(make_result(metrics={"valid": {"pop100/ndcg@10": 0.1, "full/ndcg@10": 0.1}, "test": {}}))
    )
    assert "config is not plain finite JSON" in "; ".join(problems(make_result(config={"lr": math.nan})))


def test_key_parameters_of_each_stage() -> None:
    train = {"model": {"attention": "softmax"}, "train": {"lr": 0.002, "seed": 4, "batch": 512}}
    assert key_parameters(train, "train") == {
        "method": "sasrec",  # model.family's default
        "attention": "softmax",
        "lam": None,
        "gate_layers": None,
        "lr": 0.002,
        "seed": 4,
        "shape": None,
        "init": None,
        "search_epochs": None,
        "batch": 512,
    }
    run = {"attention": "linear", "search": {"lam": 1, "epochs": 3}, "gates": {"layers": 0}, "retrain": {"batch": 64}}
    got = key_parameters(run | {"train": {"lr": 0.001, "seed": 0, "batch": 2048}}, "run")
    assert (got["lam"], got["gate_layers"], got["batch"], got["search_epochs"]) == (1.0, 0, 64, 3)
    assert got["method"] == "dnsrec"  # no search.method: recorded before the key existed, DNS-Rec then


def test_a_train_stage_architecture_comes_from_its_model(make_result: Any) -> None:
    config = {"model": {"d": 64, "inner": 128, "layers": 2, "heads": 4}, "train": {"lr": 0.001}}
    arch = architecture_values(make_result(stage="train", architecture=None, config=config, search=None))
    assert (arch["depth"], arch["hidden"], arch["inner_widths"], arch["head_dim"]) == (2, [64, 64], [128, 128], 16)


def test_pareto_front_against_brute_force() -> None:
    rng = random.Random(0)
    for _ in range(300):  # small integer grids make ties and duplicates common
        points = [(i, float(rng.randint(0, 5)), float(rng.randint(0, 5))) for i in range(rng.randint(0, 15))]
        brute = {k for k, q, c in points if not any(dominated((q, c), (q2, c2)) for _, q2, c2 in points)}
        assert set(front(points)) == brute
    assert front([(1, 0.3, 10.0), (2, 0.3, 10.0), (3, 0.2, 5.0), (4, 0.1, 20.0)]) == [3, 1, 2]


def test_cli_pareto_show_compare_best_export(
    tmp_path: Path, make_result: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    store = open_store(db)
    for i, (ndcg, flops) in enumerate([(0.2, 1000), (0.3, 5000), (0.25, 8000)]):
        store.record(make_result(ndcg=ndcg, flops=flops), tmp_path / f"r{i}")
    store.close()
    assert main(["results", "pareto", "--db", db]) == 0  # the PNG: tests/results/test_plots.py
    out = capsys.readouterr().out
    assert "2 of 3 complete runs on the valid/pop100/ndcg@10 vs flops front" in out
    assert main(["results", "show", "--db", db, "1"]) == 0 and "architecture" in capsys.readouterr().out
    assert main(["results", "compare", "--db", db, "1", "2"]) == 0 and "run 2" in capsys.readouterr().out
    assert main(["results", "best", "--db", db]) == 0 and "r1" in capsys.readouterr().out
    assert main(["results", "export", "--db", db, "--format", "json", str(tmp_path / "x.json")]) == 0
    assert (tmp_path / "x.json").is_file()


def test_masking() -> None:
    url = resolve_url("postgresql://bob:p%40ss@db.example:5432/results")
    assert url.drivername == "postgresql+psycopg" and url.password == "p@ss"
    assert resolve_url("postgres://bob@h/db").drivername == "postgresql+psycopg"
    assert "p@ss" not in mask_text("failed for p@ss at postgresql://bob:p%40ss@db.example/x", url)
    assert mask_text("see postgresql://u:topsecret@h/db") == "see postgresql://u:***@h/db"


def test_slurm_info_from_the_environment() -> None:
    assert SlurmInfo.from_env({}) is None
    env = {"SLURM_JOB_ID": "12", "SLURM_ARRAY_JOB_ID": "10", "SLURM_ARRAY_TASK_ID": "2"}
    assert SlurmInfo.from_env(env) == SlurmInfo("12", "10", 2)


def test_recording_never_loses_the_run(tmp_path: Path, make_result: Any, capsys: pytest.CaptureFixture[str]) -> None:
    result = make_result()
    result.write(tmp_path / "run")
    record(result, tmp_path / "run", DbOptions("postgresql://u:hidden-pw@127.0.0.1:1/x"))
    err = capsys.readouterr().err
    assert "warning: result not recorded" in err and "hidden-pw" not in err and "results ingest" in err
    assert (tmp_path / "run" / "result.json").is_file()
    record(result, tmp_path / "run", DbOptions(f"sqlite:///{tmp_path / 'skip.db'}", skip=True))
    assert not (tmp_path / "skip.db").exists()
    record(result, tmp_path / "run", DbOptions(f"sqlite:///{tmp_path / 'ok.db'}"))
    assert "recorded as run 1" in capsys.readouterr().out


def test_the_results_package_loads_no_torch_or_numpy() -> None:
    code = (
        "import sys, dnsrec.results, dnsrec.results.plot, dnsrec.results.report; "
        "print(sorted({'torch', 'numpy'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
