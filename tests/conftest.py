"""Shared test settings: real data from ../shared/data (read-only), caches in a temporary directory,
never the network."""

from __future__ import annotations

import os

import pytest
import torch
from data_support import DATA_DIR
from system_deps import missing_for

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each xdist worker is one process per core: torch's own threads on top oversubscribe the cores and
    # make CPU training many times slower (measured: 18 s -> 217 s for one search test on 2 cores).
    torch.set_num_threads(1)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Stop at once, with one message, when the selected tests need a system binary this machine lacks (the
    SLURM cluster's, PostgreSQL's): see system_deps.py. Checked once, by the xdist controller or by pytest
    itself, never again in each worker."""
    config = session.config
    if hasattr(config, "workerinput"):
        return
    invoked = config.invocation_params.dir
    selected = [invoked / arg.split("::", 1)[0] for arg in config.args]
    message = missing_for(selected)
    if message:
        pytest.exit(message, returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.setenv("DNSREC_DATA_DIR", str(DATA_DIR))
    monkeypatch.setenv("DNSREC_OFFLINE", "1")
    monkeypatch.setenv("DNSREC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "dnsrec-cache"))
    monkeypatch.setenv("DNSREC_DB_URL", f"sqlite:///{tmp_path_factory.getbasetemp() / 'dnsrec-results.db'}")
