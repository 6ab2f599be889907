"""`dnsrec_runs.method`, what produced a run (search method or model family), on SQLite and PostgreSQL:
recorded from each stage's config, filled by migration 0003 for rows recorded at revision 0002, and shown,
filtered, exported and compared by `dnsrec results`."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from results_support import runs_at_revision

from dnsrec.cli import main
from dnsrec.results import ResultStore, open_store
from dnsrec.run_result import RunResult


def _trained(make_result: Any, family: str) -> RunResult:
    """A `dnsrec train model=FAMILY` result: a fixed model, no search section in its config."""
    model = {"family": family, "attention": "linear", "d": 64, "inner": 128, "layers": 2, "heads": 4}
    config = {"dataset": {"name": "ml-100k"}, "model": model, "train": {"lr": 0.001, "seed": 0, "batch": 2048}}
    return make_result(stage="train", architecture=None, search=None, config=config)


def _searched(make_result: Any, method: str | None) -> RunResult:
    """A `run` result whose config says `search.method=METHOD` (None: written before the key existed)."""
    result = make_result(stage="run")
    if method is not None:
        result.config["search"]["method"] = method
    return result


def _retrained(make_result: Any, searched_by: str | None) -> RunResult:
    """A `dnsrec retrain ARCH.json` result; its config names the default search method whatever searched the file."""
    result = make_result(stage="retrain")
    result.config["search"]["method"] = "dnsrec"
    if searched_by is not None:
        result.architecture["method"] = searched_by
    return result


def test_each_run_records_what_produced_it(store: ResultStore, make_result: Any, tmp_path: Path) -> None:
    ids = {
        "fdsa": store.record(_trained(make_result, "fdsa"), tmp_path / "fdsa"),
        "dnsrec": store.record(_searched(make_result, None), tmp_path / "dnsrec"),
        "darts": store.record(_searched(make_result, "darts"), tmp_path / "darts"),
        "recnas": store.record(_retrained(make_result, "recnas"), tmp_path / "recnas"),
        None: store.record(_retrained(make_result, None), tmp_path / "retrain"),  # a file that does not say
        "proxyless": store.record_running(
            tmp_path / "pending", stage="run", dataset="ml-100k", config={"search": {"method": "proxyless"}}
        ),
    }
    assert {run.id: run.method for run in store.list_runs()} == {run_id: m for m, run_id in ids.items()}


def test_a_running_retrain_is_not_credited_to_its_configs_default(store: ResultStore, tmp_path: Path) -> None:
    config = {"search": {"method": "dnsrec"}}  # what `dnsrec retrain` resolves whatever searched the file
    store.record_running(tmp_path / "retrain", stage="retrain", dataset="ml-100k", config=config)
    assert [run.method for run in store.list_runs()] == [None]


def test_migration_0003_fills_rows_recorded_at_0002(db_url: str) -> None:
    configs = {
        "sasrec": ("train", {"model": {"family": "sasrec", "d": 64}}),
        "old-dnsrec": ("run", {"search": {"lam": 0.1}}),  # before search.method existed
        "darts": ("run", {"search": {"lam": 0.1, "method": "darts"}}),
        "retrain": ("retrain", {"search": {"lam": 0.1, "method": "dnsrec"}}),  # the file's searcher is unknown
        "running": ("run", {}),  # a launched trial recorded without its config
    }
    rows = [
        {"run_dir": f"/runs/{name}", "status": "COMPLETE", "stage": stage, "dataset": "ml-100k", "launcher": "local"}
        | {"config": config}
        for name, (stage, config) in configs.items()
    ]
    runs_at_revision(db_url, "0002", rows)
    store = open_store(db_url)  # upgrades to head, then checks the tables are exactly the models'
    try:
        found = {Path(run.run_dir).name: run.method for run in store.list_runs()}
    finally:
        store.close()
    assert found == {"sasrec": "sasrec", "old-dnsrec": "dnsrec", "darts": "darts", "retrain": None, "running": None}


def test_results_list_export_compare_by_method(
    tmp_path: Path, make_result: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    store = open_store(db)
    store.record(_searched(make_result, None), tmp_path / "dnsrec")
    darts = store.record(_searched(make_result, "darts"), tmp_path / "darts")
    store.record(_trained(make_result, "sasrec"), tmp_path / "sasrec")
    store.close()

    assert main(["results", "list", "--db", db, "--where", "method=darts"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    method = header.split().index("method")
    assert [(row.split()[0], row.split()[method]) for row in rows] == [(str(darts), "darts")]

    assert main(["results", "export", "--db", db, "--format", "csv", str(tmp_path / "runs.csv")]) == 0
    with (tmp_path / "runs.csv").open() as f:
        exported = {Path(row["run_dir"]).name: row["method"] for row in csv.DictReader(f)}
    assert exported == {"dnsrec": "dnsrec", "darts": "darts", "sasrec": "sasrec"}

    assert main(["results", "compare", "--db", db, "1", str(darts)]) == 0
    assert ["method", "dnsrec", "darts"] in [line.split() for line in capsys.readouterr().out.splitlines()]
