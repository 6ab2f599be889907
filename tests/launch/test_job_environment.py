"""Issue 10, weak item: a SLURM job got the password-bearing DNSREC_DB_URL in its environment, although
jobs never open the database (the driver records every run). Jobs now start without the database's
credentials, on SLURM (a real cluster) and on the local launcher."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from slurm_support import SlurmCluster

from dnsrec.launch import JobState, Resources, launcher_config
from dnsrec.launch.local import LocalLauncher
from dnsrec.launch.slurm import SlurmLauncher

SECRET = "postgresql://dnsrec:s3cret-pw@db.example/dnsrec"


def _wait(launcher: object, job: object, timeout: float = 120) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        launcher.refresh()  # type: ignore[attr-defined]
        if job.state() is JobState.DONE:  # type: ignore[attr-defined]
            return job.result()  # type: ignore[attr-defined]
        time.sleep(0.5)
    raise AssertionError("job did not finish")


def test_a_slurm_job_gets_no_database_credentials(
    slurm_cluster: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DNSREC_DB_URL", SECRET)
    monkeypatch.setenv("PGPASSWORD", "s3cret-pw")

    def environment(keys: tuple[str, ...]) -> dict[str, str | None]:  # local: pickled by value
        return {k: os.environ.get(k) for k in keys}

    cfg = launcher_config(
        {"name": "slurm", "partition": slurm_cluster.partition, "resources": {"mem_gb": 0.2, "time_min": 5}}
    )
    launcher = SlurmLauncher(cfg, tmp_path / "jobs", 1, 0.5)
    (job,) = launcher.submit(environment, [(("DNSREC_DB_URL", "PGPASSWORD", "SLURM_JOB_ID"),)], ["env-0"])
    seen = _wait(launcher, job)
    assert seen["SLURM_JOB_ID"] and seen["DNSREC_DB_URL"] is None and seen["PGPASSWORD"] is None, seen
    assert os.environ["DNSREC_DB_URL"] == SECRET  # the driver keeps its own


def test_a_local_job_gets_no_database_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DNSREC_DB_URL", SECRET)
    launcher = LocalLauncher(tmp_path / "jobs", Resources(), workers=1)
    (job,) = launcher.submit(os.getenv, [("DNSREC_DB_URL",)], ["env-0"])
    assert _wait(launcher, job) is None
