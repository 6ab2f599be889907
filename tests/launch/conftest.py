"""Fixtures of the launcher tests: `slurm_cluster`, a real single-node SLURM cluster (slurm/cluster.sh) with
accounting (sacct) and 2 fake GPUs, started once per test run and shared by the xdist workers.

Set DNSREC_SLURM_CONF=/path/to/etc/slurm.conf to run against a cluster that is already up (e.g. from
`make slurm-up`); the tests then never stop it. If the SLURM binaries are missing the run stops at session
start with one message (tests/system_deps.py), and the fixture fails, never skips: `make install` installs
them, so a silent skip would hide a broken install step.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from slurm_support import SlurmCluster, SlurmUnavailable, existing_cluster, shared_cluster


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmCluster]:
    """A running cluster; SLURM_CONF points at it in os.environ for the whole session (submitit and the
    SLURM commands find it there). Its partition is `cluster.partition`, its fake GPUs `cluster.gpus`."""
    with ExitStack() as stack:
        try:
            if os.environ.get("DNSREC_SLURM_CONF"):
                cluster = existing_cluster(Path(os.environ["DNSREC_SLURM_CONF"]))
            else:
                base = tmp_path_factory.getbasetemp()
                # xdist workers get basetemp/popen-gwN: their common parent is the run's own directory
                shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
                cluster = stack.enter_context(shared_cluster(shared))
        except SlurmUnavailable as e:
            pytest.fail(str(e))
        mp = stack.enter_context(pytest.MonkeyPatch.context())
        for key, value in cluster.env.items():
            mp.setenv(key, value)
        yield cluster
