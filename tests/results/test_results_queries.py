"""Queries, on SQLite and PostgreSQL: filters (and injection attempts), best, Pareto against a brute-force
check, compare, CSV/JSON export, and the example SQL files in db/queries/."""

from __future__ import annotations

import csv
import json
import random
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from results_support import BACKENDS, new_database

from dnsrec.cli import main
from dnsrec.results import QueryError, ResultStore, RunFilter, open_store
from dnsrec.results.pareto import dominated

QUERIES = Path(__file__).resolve().parents[2] / "db" / "queries"
NDCG = "test/pop100/ndcg@10"


@pytest.fixture(scope="module", params=BACKENDS)
def filled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, make_result: Any
) -> Iterator[ResultStore]:
    """24 complete runs over two datasets and two sweeps, with tied NDCG and FLOPs values, plus a failure.
    Shared by this module's tests, which only read it."""
    tmp_path = tmp_path_factory.mktemp("filled")
    store = open_store(new_database(request.param, tmp_path, request))
    rng = random.Random(7)
    for i in range(24):
        result = make_result(
            dataset="ml-100k" if i % 2 else "gowalla",
            ndcg=rng.choice([0.1, 0.2, 0.25, 0.3, 0.35]),
            flops=rng.choice([1_000, 2_000, 5_000, 10_000]),
            lam=(0.01, 0.1, 1.0)[i % 3],
            seed=i,
        )
        store.record(result, tmp_path / f"r{i:02d}", sweep="a" if i < 12 else "b", trial=i)
    store.record_failure(tmp_path / "failed", "diverged", stage="run", dataset="ml-100k", sweep="a", trial=99)
    yield store
    store.close()


def ids(runs: list[Any]) -> list[int]:
    return [r.id for r in runs]


def test_filters(filled: ResultStore) -> None:
    runs = filled.list_runs()
    assert len(runs) == 25
    complete = [r for r in runs if r.status == "COMPLETE"]
    assert ids(filled.list_runs(RunFilter(dataset="gowalla"))) == ids([r for r in runs if r.dataset == "gowalla"])
    assert ids(filled.list_runs(RunFilter(sweep="b"))) == ids([r for r in runs if r.sweep == "b"])
    assert ids(filled.list_runs(RunFilter(status="failed"))) == ids([r for r in runs if r.status == "FAILED"])
    assert len(filled.list_runs(RunFilter(stage="train"))) == 0
    good = filled.list_runs(RunFilter(where=(f"{NDCG}>=0.3", "lam <= 0.1", "attention=linear")))
    expected = [r for r in complete if r.metrics[NDCG] >= 0.3 and r.lam is not None and r.lam <= 0.1]
    assert ids(good) == ids(expected) and good
    assert ids(filled.list_runs(RunFilter(where=("flops<2000",)))) == ids([r for r in complete if r.flops < 2000])  # type: ignore[operator]
    top = filled.list_runs(sort=NDCG, limit=3)  # metrics sort best first, then by id
    assert ids(top) == ids(sorted(complete, key=lambda r: (-r.metrics[NDCG], r.id))[:3])
    cheap = filled.list_runs(sort="flops", limit=4)
    assert [r.flops for r in cheap] == sorted(r.flops for r in complete)[:4]  # type: ignore[type-var]


INJECTIONS = [
    RunFilter(dataset="x' OR 1=1 --"),
    RunFilter(sweep="a' OR '1'='1"),
    RunFilter(where=("attention=linear' OR 1=1 --",)),
    RunFilter(where=('dataset=gowalla"; DROP TABLE dnsrec_runs; --',)),
]
BAD_CONDITIONS = {
    "lam>=0 OR 1=1": "'0 OR 1=1' is not a finite number",
    "lam>=0; DROP TABLE dnsrec_runs": "is not a finite number",
    "1=1 OR x": "unknown field or metric '1'",
    "nope>=1": "valid are metrics: test/full/mrr@10",
    "test/pop100/ndcg@5>=0.1": "numbers: batch",
    "attention>linear": "compare it with = or !=",
    "lam>=nan": "not a finite number",
    "just words": "not a condition",
}


def test_injection_attempts_match_nothing_and_bad_conditions_are_clear(filled: ResultStore) -> None:
    for bad in INJECTIONS:
        assert filled.list_runs(bad) == [], bad
    for where, message in BAD_CONDITIONS.items():
        with pytest.raises(QueryError) as err:
            filled.list_runs(RunFilter(where=(where,)))
        assert message in str(err.value), where
    assert len(filled.list_runs()) == 25  # and every table is still there


def test_bad_names_list_what_is_valid(filled: ResultStore) -> None:
    with pytest.raises(QueryError, match="valid are COMPLETE, FAILED, RUNNING"):
        filled.list_runs(RunFilter(status="done"))
    with pytest.raises(QueryError, match="unknown field or metric 'bogus'"):
        filled.list_runs(sort="bogus")
    with pytest.raises(QueryError, match="recorded metrics are test/full/mrr@10"):
        filled.best("test/pop100/ndcg@5")
    with pytest.raises(QueryError, match="unknown cost 'speed'; valid are batch"):
        filled.pareto(cost="speed")
    with pytest.raises(QueryError, match="no run with id 999"):
        filled.get_run(999)


def test_the_cli_passes_filters_as_values(
    filled: ResultStore, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the URL (with its password, on PostgreSQL) comes from the environment, as the CLI requires
    monkeypatch.setenv("DNSREC_DB_URL", filled.engine.url.render_as_string(hide_password=False))
    assert main(["results", "list", "--dataset", "x' OR 1=1 --"]) == 0
    assert "no runs match" in capsys.readouterr().out
    assert main(["results", "list", "--where", "lam>=0 OR 1=1"]) == 2
    assert "not a finite number" in capsys.readouterr().err
    assert main(["results", "list", "--sweep", "b", "--sort", NDCG, "--limit", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("id") and " b " in lines[1]


def test_best_is_the_brute_force_maximum(filled: ResultStore) -> None:
    complete = [r for r in filled.list_runs() if r.status == "COMPLETE"]
    for dataset in (None, "gowalla", "ml-100k"):
        pool = [r for r in complete if dataset in (None, r.dataset)]
        expected = min(pool, key=lambda r: (-r.metrics[NDCG], r.flops, r.id))
        best = filled.best(filters=RunFilter(dataset=dataset))
        assert best is not None and best.id == expected.id
    assert filled.best("valid/full/ndcg@10") == filled.best("full/ndcg@10", split="valid")
    assert filled.best("ndcg@10") == filled.best()
    assert filled.best(filters=RunFilter(dataset="none")) is None


def test_pareto_front_matches_brute_force(filled: ResultStore) -> None:
    complete = [r for r in filled.list_runs() if r.status == "COMPLETE"]
    for dataset in (None, "gowalla", "ml-100k"):
        pool = [(r.id, (r.metrics[NDCG], float(r.flops))) for r in complete if dataset in (None, r.dataset)]  # type: ignore[arg-type]
        brute = {i for i, p in pool if not any(dominated(p, q) for _, q in pool)}
        found = filled.pareto(NDCG, RunFilter(dataset=dataset))
        assert {p.run.id for p in found.front} == brute and len(found.points) == len(pool)
        assert [p.cost for p in found.front] == sorted(p.cost for p in found.front)
    by_params = filled.pareto("test/full/ndcg@10", cost="params")
    assert len(by_params.front) >= 1 and by_params.cost == "params"


def test_compare_shows_what_differs(filled: ResultStore) -> None:
    runs = filled.list_runs(RunFilter(sweep="a"))[:3]
    comparison = filled.compare([r.id for r in runs])
    rows = dict(comparison.rows)
    assert rows["config.search.lam"] == [r.lam for r in runs] and rows["config.train.seed"] == [r.seed for r in runs]
    assert rows[NDCG] == [r.metrics[NDCG] for r in runs] and "config.attention" not in rows
    with pytest.raises(QueryError, match="no run with id 12345"):
        filled.compare([runs[0].id, 12345])


def test_export_csv_and_json(filled: ResultStore, tmp_path: Path) -> None:
    assert filled.export(tmp_path / "runs.csv", "csv", RunFilter(status="COMPLETE")) == 24
    with (tmp_path / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    views = {r.id: r for r in filled.list_runs()}
    assert len(rows) == 24 and {NDCG, "flops", "lam", "run_dir", "sweep"} <= set(rows[0])
    for row in rows:
        view = views[int(row["id"])]
        assert float(row[NDCG]) == view.metrics[NDCG] and int(row["flops"]) == view.flops
        assert json.loads(row["hidden"]) == [32, 16] and row["sweep"] == view.sweep
    assert filled.export(tmp_path / "all.json", "json") == 25
    data = json.loads((tmp_path / "all.json").read_text())
    assert data == [v.to_dict() for v in filled.list_runs()]
    assert data[0]["config"]["search"]["lam"] == views[data[0]["id"]].lam
    with pytest.raises(QueryError, match="valid are csv, json"):
        filled.export(tmp_path / "x.xml", "xml")


def _run_sql(store: ResultStore, sql: str) -> list[tuple[Any, ...]]:
    """Through the plain driver: Python's sqlite3 module, or psycopg for PostgreSQL."""
    if store.engine.dialect.name == "sqlite":
        with sqlite3.connect(str(store.engine.url.database)) as conn:
            return [tuple(row) for row in conn.execute(sql).fetchall()]
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(sql)
        return [tuple(row) for row in cur.fetchall()]
    finally:
        raw.close()


def test_example_sql_queries(filled: ResultStore) -> None:
    assert {p.name for p in QUERIES.glob("*.sql")} >= {"best_run_per_dataset.sql", "pareto_candidates.sql"}
    best = _run_sql(filled, (QUERIES / "best_run_per_dataset.sql").read_text())
    expected = {d: filled.best(filters=RunFilter(dataset=d)) for d in ("gowalla", "ml-100k")}
    assert [(row[0], row[1]) for row in best] == [(d, r.id) for d, r in expected.items() if r is not None]
    front = _run_sql(filled, (QUERIES / "pareto_candidates.sql").read_text())
    for dataset in ("gowalla", "ml-100k"):
        mine = {p.run.id for p in filled.pareto(filters=RunFilter(dataset=dataset)).front}
        assert {row[1] for row in front if row[0] == dataset} == mine
    table = _run_sql(filled, (QUERIES / "sweep_metric_table.sql").read_text())
    assert len(table) == 25 and sum(row[3] == "FAILED" for row in table) == 1
    status = _run_sql(filled, (QUERIES / "sweep_status.sql").read_text())
    assert [(row[0], row[1], row[2]) for row in status] == [
        ("a", "COMPLETE", 12),
        ("a", "FAILED", 1),
        ("b", "COMPLETE", 12),
    ]
