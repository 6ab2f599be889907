"""Folders whose files this user's processes load as code: the sweep's folder and the launchers' job folders.

Job files are pickles (a pickle runs code when loaded): with `sweep.root` in a place others could write, a
pickle planted by another user ran as the driver's user. Such a folder must be owned by the current user
and writable by no one else; one that is not is refused with one line, and job folders are created 0700.
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from dnsrec.launch.jobs import LaunchError


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def check_private(path: Path, what: str) -> None:
    """LaunchError unless the existing folder `path` is owned by this user and writable by no one else."""
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise LaunchError(f"{what} {path} is not a folder")
    if info.st_uid != os.getuid():
        raise LaunchError(
            f"{what} {path} is owned by {_user(info.st_uid)}, not by you ({_user(os.getuid())}): its job files "
            "are pickles that run as code when loaded, so they must live in a folder of your own"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise LaunchError(
            f"{what} {path} is writable by others (mode {stat.S_IMODE(info.st_mode):o}): its job files are "
            f"pickles that run as code when loaded; `chmod go-w {path}` or use a folder of your own"
        )


def check_if_present(path: Path, what: str) -> None:
    """`check_private` for a folder that exists; nothing for one that does not (it is created private)."""
    if path.exists():
        check_private(path, what)


def private_folder(path: Path, what: str, mode: int = 0o700) -> Path:
    """`path`, created with `mode` where missing (its missing parents too), checked by `check_private`."""
    if not path.exists():
        try:
            path.mkdir(parents=True, exist_ok=True)
            os.chmod(path, mode)  # mkdir's mode is cut by the umask; this one is meant
        except OSError as e:
            raise LaunchError(f"{what} {path}: cannot create it ({e.strerror})") from e
    check_private(path, what)
    return path
