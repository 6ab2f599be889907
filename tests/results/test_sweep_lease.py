"""Issue 10 case 3: one driver per sweep, on SQLite and on a real PostgreSQL server.

A second driver of a sweep used to run beside the first: started while the first had a trial running, it
declared that live trial lost and retried it into the same directory; started together on a fresh
database, it died in Optuna's storage setup with a traceback. Now a lease row in the results database
(host, pid, heartbeat, expiry) makes the second refuse with one line naming the holder, before it touches
the study; a driver killed with -9 leaves a lease that expires, and a rerun then takes the sweep over.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sweep_support import dnsrec, start_dnsrec, states, sweep_args, wait_for_line

REFUSAL = "dnsrec: error: sweep {name} is already driven by pid {pid} on host {host}"


def _env(db_url: str) -> dict[str, str]:
    return {**os.environ, "DNSREC_DB_URL": db_url, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _trials(db_url: str, name: str) -> list[Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=name, storage=db_url).get_trials(deepcopy=False)


def _refusal(err: str, name: str, pid: int) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(REFUSAL.format(name=name, pid=pid, host=socket.gethostname())), err


def _freeze_outside_a_write(proc: subprocess.Popen[str], db_url: str) -> None:
    """SIGSTOP `proc` at a moment it holds no SQLite write lock. Frozen inside a write transaction (a heartbeat,
    a trial's state) it would keep the file locked for as long as it is stopped, and the second driver would
    then fail on the busy timeout ("database is locked") before it could read the lease: a state no live
    driver stays in, which the test's freeze would otherwise create by chance on a loaded machine. PostgreSQL
    readers are not blocked by a writer, so there the first SIGSTOP is kept."""
    for _ in range(50):
        os.kill(proc.pid, signal.SIGSTOP)
        if not db_url.startswith("sqlite:///"):
            return
        probe = sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=0.5)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:  # locked by the frozen driver: let it finish the write, try again
            os.kill(proc.pid, signal.SIGCONT)
            time.sleep(0.2)
        finally:
            probe.close()
    raise AssertionError(f"the first driver held the SQLite write lock at each of 50 tries ({db_url})")


def test_a_second_driver_is_refused_while_the_first_runs_a_trial(db_url: str, tmp_path: Path) -> None:
    # The first driver is frozen (SIGSTOP) once it has submitted a trial, so it is still mid-sweep, holding
    # its lease, whenever the second one gets going: on a loaded machine the tiny sweep otherwise finished
    # before the second driver had imported. The lease outlives the freeze (600 s without a heartbeat).
    env, args = _env(db_url), ["sweep", *sweep_args("lease", 2, 1, "sweep.lease_seconds=600")]
    first = start_dnsrec(args, tmp_path, env)
    seen: list[str] = []
    wait_for_line(first, r"trial 0 submitted as job", seen, timeout=180)
    _freeze_outside_a_write(first, db_url)
    try:
        second = dnsrec(args, tmp_path, env, timeout=120)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    assert second.returncode == 2, second.stdout + second.stderr
    _refusal(second.stderr, "lease", first.pid)
    assert "submitted" not in second.stdout and "lost" not in second.stdout

    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, "".join(seen) + out
    assert states(_trials(db_url, "lease")) == {"COMPLETE": 2}  # nothing failed as lost, nothing doubled


def test_two_drivers_started_together_on_a_fresh_database(db_url: str, tmp_path: Path) -> None:
    env, args = _env(db_url), ["sweep", *sweep_args("together", 1, 1)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "dnsrec.cli", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], outs
    winner, loser = (0, 1) if codes[0] == 0 else (1, 0)
    assert "Traceback" not in outs[loser][1] + outs[winner][1]
    _refusal(outs[loser][1], "together", procs[winner].pid)
    assert states(_trials(db_url, "together")) == {"COMPLETE": 1}


def test_a_killed_drivers_lease_expires_and_a_rerun_takes_over(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'results.db'}"
    # Long enough that the second driver's start (a CLI importing torch, seconds on a loaded 2-core machine:
    # a 3 s lease had expired before it looked) surely falls inside the dead driver's lease.
    lease = 30.0
    env, args = _env(db_url), ["sweep", *sweep_args("takeover", 2, 1, f"sweep.lease_seconds={lease:g}")]
    first = start_dnsrec(args, tmp_path, env)
    seen: list[str] = []
    wait_for_line(first, r"trial 0 submitted as job", seen, timeout=180)
    first.kill()  # kill -9: no release, no heartbeat any more
    first.communicate(timeout=60)
    killed = time.monotonic()

    early = dnsrec(args, tmp_path, env, timeout=120)  # the dead driver's lease has not expired yet
    assert early.returncode == 2, early.stdout + early.stderr
    _refusal(early.stderr, "takeover", first.pid)

    time.sleep(max(0.0, killed + lease + 0.5 - time.monotonic()))  # the last heartbeat was before the kill
    rerun = dnsrec(args, tmp_path, env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    final = _trials(db_url, "takeover")
    assert states(final).get("COMPLETE") == 2 and "RUNNING" not in states(final)


_OPEN = """
import sys
sys.path.insert(0, {tests!r})
from sweep_support import sweep_args
from dnsrec.compose import compose
from dnsrec.sweep.run import prepare
from dnsrec.sweep.study import open_study
cfg, base, _ = prepare(compose("sweep", sweep_args(sys.argv[2], 1, 1)))
open_study(cfg, base, sys.argv[1])
"""


def test_optuna_storage_setup_on_a_fresh_database_survives_drivers_starting_together(tmp_path: Path) -> None:
    """Drivers of different sweeps (no lease between them) creating Optuna's tables at the same moment: a
    loser of the race ("table studies already exists", UNIQUE on alembic_version) tries again."""
    code = _OPEN.format(tests=str(Path(__file__).resolve().parents[1]))
    for round_ in range(3):
        db_url = f"sqlite:///{tmp_path / f'fresh{round_}.db'}"
        procs = [
            subprocess.Popen([sys.executable, "-c", code, db_url, f"s{i}"], stderr=subprocess.PIPE, text=True)
            for i in range(4)
        ]
        errors = [p.communicate(timeout=120)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], "\n".join(errors)
