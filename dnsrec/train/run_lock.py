"""One process per run directory: two processes training into one directory (a job submitted twice, a
requeue while the first copy still runs) would interleave their checkpoints and leave a result.json that
neither run alone produced.

`hold` takes an exclusive `flock` on `<run_dir>/.lock`; `scope`, around a whole run, gives it back when the
run ends, however it ends, so a process that outlives its run (a Ray worker, a test) does not block a retry
elsewhere. The kernel drops the lock when the process dies (a crash or `kill -9` included), so a stale lock
never blocks a resume. A file system without locks runs unguarded, with a warning, as dnsrec.data.cache
does. The holder writes its pid and host into the file, for the refusal's message.
Re-entrant within a process: a run that claims its directory again keeps the lock it has.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

from dnsrec.errors import RunDirInUse
from dnsrec.files import WriteFailed, describe

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
_held: dict[Path, IO[str]] = {}  # directories this process holds, with their open lock files


def hold(run_dir: Path) -> None:
    """Hold `run_dir` (until `release`, the end of a `scope` or of the process), or raise RunDirInUse naming the
    process that holds it (WriteFailed where the lock file cannot be written: a full disk)."""
    key = run_dir.resolve()
    if key in _held:
        return
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = open(run_dir / LOCK_FILE, "a+")  # noqa: SIM115 -- held open while the run lasts: that is the lock
    except OSError as e:
        raise WriteFailed(describe(run_dir / LOCK_FILE, e)) from None
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
    except OSError as e:  # a file system without locks (ENOLCK on some NFS mounts): run unguarded, as before
        lock.close()
        log.warning("cannot lock %s (%s); running without the one-process-per-directory guard", lock.name, e)
        return
    try:  # the holder's name, for a refused second process's message
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        lock.flush()
    except OSError as e:  # a full disk: say so in one line, as every other write does
        with suppress(OSError):  # closing flushes the same unwritable buffer again
            lock.close()
        raise WriteFailed(describe(run_dir / LOCK_FILE, e)) from None
    _held[key] = lock


def release(run_dir: Path) -> None:
    """Give `run_dir` back (closing the lock file drops the flock); nothing where this process holds none."""
    lock = _held.pop(run_dir.resolve(), None)
    if lock is not None:
        lock.close()


@contextmanager
def scope(run_dir: Path) -> Iterator[None]:
    """Around one run: what it holds of `run_dir` is given back when it ends, returned or raised; a directory
    this process held before the run began (a run inside another) stays held."""
    held_before = run_dir.resolve() in _held
    try:
        yield
    finally:
        if not held_before:
            release(run_dir)
