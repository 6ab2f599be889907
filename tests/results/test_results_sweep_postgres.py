"""A sweep whose Optuna study and results share one real PostgreSQL database: Optuna's tables (and its own
`alembic_version`) beside dnsrec's prefixed ones, neither migration touching the other's."""

from __future__ import annotations

from pathlib import Path

from sweep_support import sweep_args

from dnsrec.compose import compose
from dnsrec.results import RunFilter, open_store
from dnsrec.sweep import run_sweep


def test_a_sweep_on_postgresql_keeps_study_and_results_in_one_database(pg_url: str, tmp_path: Path) -> None:
    raw = compose("sweep", sweep_args("pg", 2, 2, f"sweep.root={tmp_path}"))
    assert run_sweep(raw, pg_url, out=lambda _: None).complete == 2
    assert run_sweep(raw, pg_url, out=lambda _: None).complete == 2  # continued: already complete, no new trial

    import optuna

    study = optuna.load_study(study_name="pg", storage=pg_url)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    store = open_store(pg_url)  # dnsrec's schema still at its head revision after Optuna's tables appeared
    try:
        runs = store.list_runs(RunFilter(sweep="pg"))
        with store.engine.connect() as c:
            from sqlalchemy import inspect

            tables = set(inspect(c).get_table_names())
    finally:
        store.close()
    assert sorted(r.trial for r in runs) == [0, 1] and {r.status for r in runs} == {"COMPLETE"}
    assert {"alembic_version", "studies", "trials", "dnsrec_alembic_version", "dnsrec_runs"} <= tables
