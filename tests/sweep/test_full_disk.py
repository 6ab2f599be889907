"""Issue 10 case 6: a full disk under a run directory, under `sweep.root`, under the SQLite database.

Before: a torch "unexpected pos" traceback with a `.tmp` file left behind; the driver dying with an OSError
(`LocalLauncher.submit` caught only LaunchError), its trial left RUNNING and a 0-byte `.call.pkl` behind;
Optuna's misleading traceback for the database. Now: one line naming the path and "no space left on
device", no temporary file left, the trial FAILED with that reason, and the driver carries on. Each test
gets a real, small tmpfs (mounting needs root: skipped, saying so, where that is not possible).
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sweep_support import env_for, start_dnsrec, states, study_trials, sweep_args, wait_for_line
from tiny_runs import TINY_RUN

from dnsrec.cli import main


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of its own, unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to fill (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(disk: Path, leave: int = 0) -> Path:
    """Fill `disk` to the last byte, then give `leave` bytes back; the filler file."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC
    size = filler.stat().st_size
    os.truncate(filler, max(0, size - leave))
    return filler


def leftovers(root: Path) -> list[Path]:
    """Temporary files, and job files written half (0 bytes)."""
    found = [p for p in root.rglob("*") if p.is_file() and (".tmp" in p.name or p.name.endswith(".pkl"))]
    return [p for p in found if ".tmp" in p.name or p.stat().st_size == 0]


@pytest.mark.parametrize("leave", [0, 100_000], ids=["full", "room-for-the-config-not-the-checkpoint"])
def test_a_run_directory_on_a_full_disk_is_one_line(
    small_disk: Path, leave: int, capsys: pytest.CaptureFixture[str]
) -> None:
    fill(small_disk, leave)
    run_dir = small_disk / "run"
    assert main(["run", *TINY_RUN, f"run_dir={run_dir}", "--no-db"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"dnsrec: error: cannot write {run_dir}/"), err
    assert err[0].endswith(": no space left on device"), err
    assert leftovers(small_disk) == []


def test_sweep_root_on_a_full_disk_fails_the_trial_and_the_driver_carries_on(small_disk: Path, tmp_path: Path) -> None:
    filler = fill(small_disk)
    extra = [f"sweep.root={small_disk}", "sweep.max_failures=100"]
    proc = start_dnsrec(["sweep", *sweep_args("fulldisk", 1, 1, *extra)], tmp_path, env_for(tmp_path))
    seen: list[str] = []
    failed = wait_for_line(proc, r"trial 0 FAILED: (.*)", seen, timeout=180).group(1)
    assert "not submitted" in failed and "fulldisk-0.call.pkl: no space left on device" in failed, failed
    assert leftovers(small_disk) == []  # no 0-byte job file, no temporary file
    filler.unlink()  # space again: the same driver goes on to finish the sweep
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, "".join(seen) + out
    trials = study_trials(tmp_path / "results.db", "fulldisk")
    assert states(trials).get("COMPLETE") == 1 and "RUNNING" not in states(trials)
    assert "no space left on device" in trials[0].user_attrs["fail_reason"]


def test_the_sqlite_database_on_a_full_disk_is_one_line(
    small_disk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fill(small_disk)
    db = small_disk / "results.db"
    assert main(["sweep", *sweep_args("fulldb", 1, 1), "--db", f"sqlite:///{db}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dnsrec: error:"), err
    assert f"no space left on device for {db}" in err[0], err
