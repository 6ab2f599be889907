"""A test run on a machine without the SLURM or PostgreSQL binaries stops at session start with one message
(tests/conftest.py + system_deps.py), before collecting or starting anything; other tests still run there."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _pytest(*args: str, binaries: Path) -> tuple[int, str, float]:
    """pytest in a subprocess as on a machine whose only binaries are those in `binaries`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "SLURM_"))}
    env["DNSREC_TEST_BINARY_PATH"] = str(binaries)
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


def test_missing_binaries_stop_the_run_at_once_with_one_message(tmp_path: Path) -> None:
    # --collect-only: should the check not stop the run, nothing is started either, and the run passes (rc 0).
    code, out, seconds = _pytest("-n", "2", "--collect-only", "-q", "tests/launch", "tests/results", binaries=tmp_path)
    print(f"{seconds:.1f} s, rc {code}:\n{out}")
    assert code == 4, out
    lines = [line for line in out.splitlines() if "system binaries not found" in line]
    assert lines and all("slurmctld" in line and "initdb" in line for line in lines), out
    assert "make install" in lines[0] and "slurm/install-deps.sh" in lines[0]
    assert "collected" not in out and "ERROR" not in out


def test_tests_that_need_no_system_binary_still_run(tmp_path: Path) -> None:
    code, out, _ = _pytest("--collect-only", "-q", "tests/data", binaries=tmp_path)
    assert code == 0, out
    assert "system binaries not found" not in out and "tests collected" in out


def test_only_what_the_selected_tests_need_is_named(tmp_path: Path) -> None:
    code, out, _ = _pytest("--collect-only", "-q", "tests/launch/test_slurm_cluster.py", binaries=tmp_path)
    assert code == 4, out
    assert "slurmctld" in out and "initdb" not in out
