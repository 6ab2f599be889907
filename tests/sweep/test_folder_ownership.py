"""Issue 10 case 9: job files are pickles, and a pickle runs code when loaded. With `sweep.root` where
another user could write, a pickle planted there ran as the driver's user. A sweep or launcher folder not
owned by the current user, or writable by others, is refused with one line before anything is written or
loaded; job folders are created 0700."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest
from sweep_support import sweep_args

from dnsrec.cli import main
from dnsrec.launch import Resources
from dnsrec.launch.local import LocalLauncher


def _refused(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dnsrec: error:"), err
    assert all(w in err[0] for w in words), err
    return err[0]


def test_a_sweep_folder_writable_by_others_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "root" / "open"
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    db = tmp_path / "r.db"
    args = ["sweep", *sweep_args("open", 1, 1, f"sweep.root={tmp_path / 'root'}"), "--db", f"sqlite:///{db}"]
    assert main(args) == 2
    _refused(capsys, str(folder), "writable by others (mode 777)")
    assert list(folder.iterdir()) == [] and not db.exists()  # no job folder, no database, no study


def test_a_job_folder_of_another_user_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a folder owned by another user needs root")
    jobs = tmp_path / "root" / "theirs" / "jobs"
    jobs.mkdir(parents=True)
    nobody = pwd.getpwnam("nobody").pw_uid
    os.chown(jobs, nobody, -1)
    args = [
        "sweep",
        *sweep_args("theirs", 1, 1, f"sweep.root={tmp_path / 'root'}"),
        "--db",
        f"sqlite:///{tmp_path}/r.db",
    ]
    assert main(args) == 2
    _refused(capsys, str(jobs), "is owned by nobody", "not by you")
    assert list(jobs.iterdir()) == []


def test_job_folders_are_created_0700(tmp_path: Path) -> None:
    jobs = tmp_path / "sweep" / "jobs"
    launcher = LocalLauncher(jobs, Resources(), workers=1)
    launcher.check()
    launcher.submit(print, [], [])
    assert stat.S_IMODE(jobs.stat().st_mode) == 0o700
