"""Local execution: each job is a fresh Python process on this machine, at most `workers` at a time.

A job of several ranks starts that many processes with torchrun's environment (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT); rank 0's outcome is the job's. Workers die with the driver
(PR_SET_PDEATHSIG), so a killed driver never leaves orphans that keep writing.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import pickle
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dnsrec.config.launcher import Resources
from dnsrec.files import WriteFailed, atomic_write, no_space
from dnsrec.launch.folders import check_if_present, private_folder
from dnsrec.launch.jobs import JobFailed, JobState, LaunchError, job_environment

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _dump(value: Any, f: Any) -> None:
    pickle.dump(value, f)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def visible_gpus() -> int:
    """GPUs this machine shows (nvidia-smi), without importing torch."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


class LocalJob:
    def __init__(self, launcher: LocalLauncher, name: str, call: Path, out: Path, log: Path) -> None:
        self._launcher = launcher
        self.name, self.call, self.out, self.log = name, call, out, log
        self.procs: list[subprocess.Popen[bytes]] = []
        self.gpus: list[int] = []
        self.cancelled = False

    @property
    def job_id(self) -> str:
        return str(self.procs[0].pid) if self.procs else f"queued:{self.name}"

    def state(self) -> JobState:
        self._launcher.pump()
        if not self.procs:
            return JobState.DONE if self.cancelled else JobState.PENDING
        alive = [p for p in self.procs if p.poll() is None]
        if alive and any(p.returncode for p in self.procs if p not in alive):
            for p in alive:  # one rank failed: the others would wait on it in a collective forever
                p.terminate()
            return JobState.RUNNING
        if alive:
            return JobState.RUNNING
        self._launcher.release(self)
        return JobState.DONE

    def result(self) -> Any:
        if self.cancelled:
            raise JobFailed("cancelled")
        if self.state() is not JobState.DONE:
            raise JobFailed("result asked for before the job finished")
        if self.out.exists():
            with open(self.out, "rb") as f:
                kind, value = pickle.load(f)
            if kind == "ok":
                return value
            raise JobFailed(f"{value} (log: {self.log})")
        codes = [p.returncode for p in self.procs]
        worst = next((c for c in codes if c), codes[0])
        how = f"killed by signal {signal.Signals(-worst).name}" if worst < 0 else f"exited with code {worst}"
        full = f"; no space left on device in {self.out.parent}" if no_space(self.out.parent) else ""
        raise JobFailed(f"worker process {how} without a result{full}; last log lines: {_tail(self.log)}")

    def cancel(self) -> None:
        self.cancelled = True
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._launcher.release(self)


def _tail(log: Path, lines: int = 3) -> str:
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


class LocalLauncher:
    name = "local"

    def __init__(self, folder: Path, resources: Resources, workers: int) -> None:
        self.folder = folder
        self.resources = resources
        self.workers = workers
        self.queue: list[LocalJob] = []
        self.running: list[LocalJob] = []
        self._free_gpus: list[int] = list(range(visible_gpus()))

    def check(self) -> None:
        check_if_present(self.folder, "launcher folder")
        have = len(self._free_gpus)
        if self.resources.gpus > have:
            raise LaunchError(
                f"launcher.resources.gpus={self.resources.gpus}: this machine has {have} GPU(s) "
                "(nvidia-smi); ask for fewer or use launcher=slurm"
            )

    def submit(self, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], names: Sequence[str]) -> list[LocalJob]:
        """Write each call's job file (whole or not at all: a full disk is a LaunchError naming the file, with
        no 0-byte `.call.pkl` left behind) and queue the jobs; none is queued unless all were written."""
        private_folder(self.folder, "launcher folder")
        jobs = []
        try:
            for args, name in zip(calls, names, strict=True):
                call = self.folder / f"{name}.call.pkl"
                atomic_write(call, functools.partial(_dump, (fn, args)), mode=0o600)
                out = self.folder / f"{name}.out.pkl"
                out.unlink(missing_ok=True)
                jobs.append(LocalJob(self, name, call, out, self.folder / f"{name}.log"))
        except WriteFailed as e:
            for job in jobs:
                job.call.unlink(missing_ok=True)
            raise LaunchError(f"launcher=local: {e}") from e
        self.queue.extend(jobs)
        self.pump()
        return jobs

    def pump(self) -> None:
        """Start queued jobs while workers (and GPUs) are free."""
        while self.queue and len(self.running) < self.workers and len(self._free_gpus) >= self.resources.gpus:
            job = self.queue.pop(0)
            if not job.cancelled:
                self._start(job)

    def _start(self, job: LocalJob) -> None:
        job.gpus, self._free_gpus = self._free_gpus[: self.resources.gpus], self._free_gpus[self.resources.gpus :]
        ranks = self.resources.tasks
        env = job_environment() | {"OMP_NUM_THREADS": str(self.resources.cpus), "DNSREC_LAUNCHER": "local"}
        if ranks > 1:
            env |= {"WORLD_SIZE": str(ranks), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
        with open(job.log, "ab") as log:
            for rank in range(ranks):
                if ranks > 1:
                    env |= {"RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(ranks)}
                if job.gpus:
                    env["CUDA_VISIBLE_DEVICES"] = str(job.gpus[rank])
                cmd = [sys.executable, "-m", "dnsrec.launch.runner", str(job.call), str(job.out)]
                # a session of its own: the terminal's Ctrl-C reaches the driver, which cancels cleanly
                proc = subprocess.Popen(
                    cmd,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
                job.procs.append(proc)
        self.running.append(job)

    def release(self, job: LocalJob) -> None:
        if job in self.running:
            self.running.remove(job)
            self._free_gpus.extend(job.gpus)
            job.gpus = []
        if job in self.queue:
            self.queue.remove(job)

    def refresh(self) -> None:
        self.pump()

    def adopt(self, job_id: str) -> None:
        return None  # local workers die with the driver that started them

    def close(self) -> None:
        for job in [*self.running, *self.queue]:
            job.cancel()
