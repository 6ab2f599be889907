"""Sweeps in tests: the tiny real run of `tiny_runs` per trial (a few seconds on one core), the `dnsrec`
command run as a user runs it, and readers of the resulting Optuna study."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tiny_runs import TINY_RUN


def sweep_args(name: str, trials: int, parallel: int = 2, *extra: str) -> list[str]:
    return [
        *TINY_RUN,
        f"sweep.name={name}",
        f"sweep.trials={trials}",
        f"sweep.parallel={parallel}",
        "sweep.poll_seconds=0.3",
        *extra,
    ]


def env_for(tmp: Path, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        "DNSREC_DB_URL": f"sqlite:///{tmp / 'results.db'}",
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        **more,
    }


def dnsrec(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The real command, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "dnsrec.cli", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def start_dnsrec(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dnsrec.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def study_trials(db: Path, name: str) -> list[Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}").get_trials(deepcopy=False)


def states(trials: list[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in trials:
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def wait_for_line(proc: subprocess.Popen[str], pattern: str, seen: list[str], timeout: float = 120) -> re.Match[str]:
    """Read a running command's output (kept in `seen`) until a line matches `pattern`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            return found
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(seen)}")
