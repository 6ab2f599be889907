"""One process per run directory: two processes training into one directory (a job submitted twice, a
requeue while the first copy still runs) would interleave their checkpoints and leave a result.json that
neither run alone produced.

`hold` takes an exclusive `flock` on `<run_dir>/.lock` and keeps it until the process ends; the kernel
drops it when the process dies (a crash or `kill -9` included), so a stale lock never blocks a resume.
The holder writes its pid and host into the file, for the refusal's message. Re-entrant within a process:
a run that claims its directory again (search, then retraining) keeps the lock it has.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import IO

from dnsrec.errors import RunDirInUse

LOCK_FILE = ".lock"
_held: dict[Path, IO[str]] = {}  # directories this process holds, with their open lock files


def hold(run_dir: Path) -> None:
    """Hold `run_dir` for the rest of this process, or raise RunDirInUse naming the process that holds it."""
    key = run_dir.resolve()
    if key in _held:
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = open(run_dir / LOCK_FILE, "a+")  # noqa: SIM115 -- held open until the process ends: that is the lock
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another process"
        lock.close()
        raise RunDirInUse(
            f"{run_dir} is in use by {holder}: one process runs in a run directory at a time; wait for it to "
            "finish (started again afterwards, this run resumes from its checkpoints) or choose another run_dir"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    lock.flush()
    _held[key] = lock
