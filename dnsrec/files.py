"""Writing a file whole or not at all, and saying plainly why not (a full disk above all).

A full disk used to show as a torch "unexpected pos" traceback or a bare `[Errno 28]` with a `.tmp` file
left behind. Every file a run, a launcher or a worker writes goes through `atomic_write`: a temporary file
beside the target, renamed over it when complete, removed on any failure; an OSError becomes WriteFailed
naming the path, and "no space left on device" when that is the cause (torch reports it only as a failed
write, so the filesystem's free space is checked too).
"""

from __future__ import annotations

import errno
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from dnsrec.errors import DNSRecError


class WriteFailed(DNSRecError, OSError):
    """A file could not be written; the message names it, and the full disk if that is why."""


def no_space(directory: Path, error: BaseException | None = None) -> bool:
    """Whether `error` is ENOSPC, or the filesystem holding `directory` has no free block left."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    try:
        return os.statvfs(directory).f_bavail == 0
    except OSError:
        return False


def describe(path: Path, error: BaseException) -> str:
    return f"cannot write {path}: {why_not_written(path, error)}"


def why_not_written(path: Path, error: BaseException) -> str:
    """The reason of a failed write of `path`, in a few words: the full disk where that is why."""
    if no_space(path.parent, error):
        return "no space left on device"
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error).strip()
    return reason.splitlines()[0] if reason else type(error).__name__


def atomic_write(path: Path, write: Callable[[IO[bytes]], object], mode: int | None = None) -> None:
    """`write(f)` into a temporary file beside `path`, then rename it over `path`; `mode`: its permissions.
    On any failure the temporary file is removed; an OSError (or a library's failed write, e.g. torch's
    RuntimeError) becomes WriteFailed naming `path`."""
    tmp: Path | None = None
    try:
        # mkstemp's O_EXCL name: unique across processes and hosts sharing a directory (a pid is not)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        tmp = Path(name)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask() if mode is None else mode)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(e, OSError | RuntimeError) and not isinstance(e, DNSRecError):
            raise WriteFailed(describe(path, e)) from e
        raise


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")), mode)


def _umask() -> int:
    """The process's umask. Read from /proc where Linux shows it: os.umask can only read it by setting it, and
    another thread creating a file between the two calls would do so under umask 0. Elsewhere the two calls
    are at least serialised among our own writers."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        current = os.umask(0)
        os.umask(current)
        return current


_UMASK_LOCK = threading.Lock()


def appending_log(path: Path) -> Callable[[str], None]:
    """A run's `log` callable that appends each line to `path` (a benchmark worker's run log): opened per line,
    so what was logged before a crash is on disk."""

    def log(line: str) -> None:
        with open(path, "a") as f:
            f.write(line + "\n")

    return log
