"""The contract every launcher keeps: submit a batch, poll each job, fetch its value or its failure."""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from dnsrec.errors import DNSRecError


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
