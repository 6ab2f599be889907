"""The contract every launcher keeps: submit a batch, poll each job, fetch its value or its failure."""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from dnsrec.errors import DNSRecError

# What jobs never need and must not carry: they never open the results database (the driver records every
# run), and a job's environment is readable by cluster administrators and, on some sites, other users.
WITHHELD_ENV = ("DNSREC_DB_URL", "DNSREC_DB_PASSWORD_FILE", "PGPASSWORD", "PGPASSFILE")


def job_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a job starts with: this process's, without the database's credentials."""
    env = dict(os.environ if base is None else base)
    for key in WITHHELD_ENV:
        env.pop(key, None)
    return env


@contextmanager
def credentials_withheld() -> Iterator[None]:
    """Remove the database's credentials from os.environ for the block: `sbatch` (called by submitit with
    this process's environment, which SLURM exports to the job by default) then never sees them."""
    saved = {key: os.environ.pop(key) for key in WITHHELD_ENV if key in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


class LaunchError(DNSRecError):
    """A launcher cannot start, or a submission was refused (bad resources, no cluster)."""


class JobFailed(DNSRecError):
    """A job ended without a value: its `reason` says how (exception, exit code, cancelled, node lost)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JobState(enum.Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"  # finished: `result()` returns the value or raises JobFailed

    @property
    def finished(self) -> bool:
        return self is JobState.DONE


class Job(Protocol):
    @property
    def job_id(self) -> str:
        """Launcher-specific id (SLURM: `<array job>_<task>`; local: the process id)."""
        ...

    def state(self) -> JobState: ...

    def result(self) -> Any:
        """The value `fn` returned; raises JobFailed with the reason when the job did not return one."""
        ...

    def cancel(self) -> None: ...


class Launcher(Protocol):
    name: str

    def check(self) -> None:
        """Refuse at start, with a clear LaunchError, what this launcher cannot run (e.g. a GPU request)."""
        ...

    def submit(self, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], names: Sequence[str]) -> Sequence[Job]:
        """Start `fn(*args)` for each args in `calls` as ONE batch (on SLURM one job array)."""
        ...

    def refresh(self) -> None:
        """Update every job's state at once (one `sacct` call on SLURM); called once per driver poll."""
        ...

    def adopt(self, job_id: str) -> Job | None:
        """A job submitted by an earlier driver, if it is still queued or running and can be watched."""
        ...

    def close(self) -> None: ...
