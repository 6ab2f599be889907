"""A tiny but real sweep: gowalla-100 (100 users of the real Gowalla check-ins), a small supernet, one
search epoch and one retraining epoch, so one trial is a few seconds on one core."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

TINY_RUN = [
    "dataset=gowalla-100",
    "dataset.d=16",
    "dataset.inner=32",
    "search.layers=2",
    "search.epochs=1",
    "search.batch=512",
    "retrain.max_epochs=1",
    "retrain.batch=1024",
    "train.eval_batch=128",
]


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
