"""Support for the engine tests: multi-process runs of `dist_worker.py` under torchrun or SLURM-style
variables (gloo on CPU, one thread per process), and a shared torch-extensions cache."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from tiny_runs import TINY_RUN

WORKER = Path(__file__).with_name("dist_worker.py")
RANK_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# DeepSpeed JIT-compiles C++ ops into TORCH_EXTENSIONS_DIR at first use. The engine avoids the one CPU op it
# would build (see dnsrec.train.engine), but anything else is compiled once here and shared by every test
# session instead of once per temporary directory.
EXTENSIONS = Path(os.environ.get("TORCH_EXTENSIONS_DIR", Path.home() / ".cache" / "dnsrec-torch-extensions"))


# DNS-Rec search + retrain on two ranks: the tiny run, dropout 0 so one process and two compute the same thing
TWO_RANK_RUN = [*TINY_RUN, "dropout=0.0", "search.arch_batch_size=24"]


def load_module(path: Path) -> ModuleType:
    """A script of the repo (not a package module) imported in this process."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_worker() -> ModuleType:
    """dist_worker imported in this process: the single-process reference runs the same code."""
    return load_module(WORKER)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rank_env(**extra: str) -> dict[str, str]:
    """This process's environment without any rank variables, one thread per rank."""
    env = {k: v for k, v in os.environ.items() if k not in RANK_VARS and not k.startswith("SLURM_")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    return env


def _check(code: int, out: Path, what: str, log: str) -> list[dict[str, Any]]:
    if code != 0:
        pytest.fail(f"{what} exited with {code}:\n{log[-6000:]}")
    files = sorted(out.glob("rank*.json"))
    return [json.loads(f.read_text()) for f in files]


def torchrun(n: int, task: str, out: Path, *args: str, timeout: float = 600) -> list[dict[str, Any]]:
    """`torchrun --standalone --nproc_per_node n dist_worker.py task out args...`; each rank's findings."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}"]
    proc = subprocess.run(
        [*cmd, str(WORKER), task, str(out), *args], env=rank_env(), capture_output=True, text=True, timeout=timeout
    )
    return _check(proc.returncode, out, "torchrun", proc.stdout + proc.stderr)


def slurm_tasks(n: int, task: str, out: Path, *args: str, timeout: float = 600) -> list[dict[str, Any]]:
    """n processes as the n tasks of one SLURM job would start them (SLURM_PROCID, SLURM_NTASKS, ...)."""
    port = str(free_port())
    procs = []
    for rank in range(n):
        env = rank_env(
            SLURM_JOB_ID="4242",
            SLURM_PROCID=str(rank),
            SLURM_NTASKS=str(n),
            SLURM_LOCALID=str(rank),
            SLURM_JOB_NODELIST="localhost",
            SLURM_JOB_NUM_NODES="1",
            MASTER_PORT=port,  # a real job derives it from SLURM_JOB_ID; tests may run side by side
        )
        cmd = [sys.executable, str(WORKER), task, str(out), *args]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs, codes = [], []
    for p in procs:
        try:
            stdout, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        logs.append(stdout)
        codes.append(p.returncode)
    return _check(max(codes, key=abs), out, "SLURM-style tasks", "\n".join(logs))
