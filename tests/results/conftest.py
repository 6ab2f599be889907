"""Fixtures of the results-store contract tests: every backend (SQLite, a real PostgreSQL server started
once per session), a hand-made RunResult factory and one real `dnsrec run` result per test session.

If the PostgreSQL server binaries are absent the run stops at session start with one message
(tests/system_deps.py), and the fixture fails, never skips: `make install` installs them, so a silent skip
would hide a broken install step.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from results_support import (
    BACKENDS,
    DATA_DIR,
    PostgresServer,
    PostgresUnavailable,
    build_result,
    new_database,
    running_postgres,
)
from tiny_runs import TINY_RUN

from dnsrec.results import ResultStore, open_store


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as e:
        pytest.fail(str(e))


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return new_database("postgresql", tmp_path, request)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return new_database(request.param, tmp_path, request)


@pytest.fixture
def store(db_url: str) -> Iterator[ResultStore]:
    s = open_store(db_url)
    yield s
    s.close()


@pytest.fixture(scope="session")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(run directory, URL of the SQLite database the CLI recorded it in) of one real tiny `dnsrec run`,
    made once per test session (xdist workers share it through a lock)."""
    from dnsrec.cli import main

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    run_dir, db = shared / "real-run", f"sqlite:///{shared / 'real-run-cli.db'}"
    with open(shared / "real-run.lock", "w") as lock, pytest.MonkeyPatch.context() as mp:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (run_dir / "result.json").exists():
            if not (DATA_DIR / "gowalla" / "gowalla-100.checkins.txt.gz").exists():
                pytest.fail(f"real data missing under {DATA_DIR}; set DNSREC_DATA_DIR to ../shared/data")
            mp.setenv("DNSREC_DATA_DIR", str(DATA_DIR))
            mp.setenv("DNSREC_OFFLINE", "1")
            mp.setenv("DNSREC_CACHE_DIR", str(shared / "dnsrec-cache"))
            with contextlib.redirect_stdout(None):
                assert main(["run", *TINY_RUN, f"run_dir={run_dir}", "--db", db]) == 0
    return run_dir, db


@pytest.fixture(scope="session")
def make_result() -> Any:
    return build_result
