"""Ranks of a multi-process run: who am I, how many are we, and the few collectives training needs.

A run is started k times, once per rank, by either launcher:
- `torchrun --nproc_per_node k ...`, which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT;
- SLURM, one job with k tasks (`srun`, or submitit with `tasks_per_node=k`): SLURM_PROCID, SLURM_NTASKS,
  SLURM_LOCALID and SLURM_JOB_NODELIST (its first host is the master; the port is MASTER_PORT if set,
  else derived from SLURM_JOB_ID the way `submitit.helpers.TorchDistributedEnvironment` does).
torchrun's variables win when both are present. With neither, the run is one process and needs no
process group. `init_from_env` exports the torch variables (DeepSpeed reads them), pins the rank's GPU
and creates the process group (NCCL for CUDA, gloo for CPU) when there is more than one rank.

Every rank holds the full data and a full copy of the model's weights after each step; only rank 0
writes files. The helpers here are no-ops on a single process.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist

from dnsrec.errors import ConfigError

T = TypeVar("T")
_PORT_RANGE = (20000, 60000)  # submitit's range for SLURM jobs


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int | None = None
    source: str = "single"  # "torchrun", "slurm" or "single"

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def read_env(environ: Mapping[str, str] = os.environ) -> DistEnv:
    """The ranks this process belongs to, from torchrun's variables, else SLURM's, else a single process."""
    try:
        if "RANK" in environ and "WORLD_SIZE" in environ:
            env = DistEnv(
                rank=int(environ["RANK"]),
                world_size=int(environ["WORLD_SIZE"]),
                local_rank=int(environ.get("LOCAL_RANK", environ["RANK"])),
                master_addr=environ.get("MASTER_ADDR", "127.0.0.1"),
                master_port=int(environ["MASTER_PORT"]) if "MASTER_PORT" in environ else None,
                source="torchrun",
            )
        elif "SLURM_PROCID" in environ and "SLURM_NTASKS" in environ:
            job = environ.get("SLURM_JOB_ID", "0")
            port = environ.get("MASTER_PORT")
            env = DistEnv(
                rank=int(environ["SLURM_PROCID"]),
                world_size=int(environ["SLURM_NTASKS"]),
                local_rank=int(environ.get("SLURM_LOCALID", 0)),
                master_addr=_first_host(environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST", "")),
                master_port=int(port) if port else random.Random(job).randint(*_PORT_RANGE),
                source="slurm",
            )
        else:
            return DistEnv()
    except ValueError as e:
        raise ConfigError(f"malformed rank environment variable: {e}") from e
    if not 0 <= env.rank < env.world_size:
        raise ConfigError(f"rank {env.rank} is outside a world of {env.world_size} processes ({env.source})")
    return env


def _first_host(nodelist: str) -> str:
    if not nodelist:
        return "127.0.0.1"
    from submitit.slurm.slurm import _parse_node_list  # SLURM's compressed form: node[01-04,07],gpu2

    return str(_parse_node_list(nodelist)[0])


def init_from_env(device: str = "auto") -> DistEnv:
    """Join the run's process group (idempotent); returns this process's rank, world size and source.

    `device` is the training device (auto/cpu/cuda): it picks the backend (NCCL on CUDA, gloo on CPU) and,
    on CUDA, the rank's GPU (`LOCAL_RANK` modulo the visible devices, so one GPU per task also works).
    """
    if dist.is_available() and dist.is_initialized():
        return DistEnv(rank=dist.get_rank(), world_size=dist.get_world_size(), source="initialized")
    env = read_env()
    if env.world_size == 1:
        return env
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    local_device = env.local_rank % torch.cuda.device_count() if cuda and torch.cuda.device_count() else 0
    exported = {
        "RANK": str(env.rank),
        "WORLD_SIZE": str(env.world_size),
        "LOCAL_RANK": str(local_device if cuda else env.local_rank),
        "MASTER_ADDR": env.master_addr,
        "MASTER_PORT": str(env.master_port or 29500),
    }
    os.environ.update(exported)
    if cuda:
        torch.cuda.set_device(local_device)
    backend = "nccl" if cuda else "gloo"
    # One line per rank before the wait: a rank that never comes (e.g. a k-task SLURM job started without
    # srun, so only one process runs) shows up as this line alone in the job's log.
    print(
        f"dnsrec: rank {env.rank} of {env.world_size} ({env.source}) joining {exported['MASTER_ADDR']}:"
        f"{exported['MASTER_PORT']} ({backend})",
        file=sys.stderr,
        flush=True,
    )
    dist.init_process_group(backend, init_method="env://", rank=env.rank, world_size=env.world_size)
    return env


def one_process_group(device: str) -> None:
    """A process group of one rank, for DeepSpeed on a single process (it needs a group; without one it
    would look for MPI). It lives in memory (no port), and only LOCAL_RANK, which DeepSpeed reads to pick
    the device, is exported: RANK/WORLD_SIZE would be inherited by child processes and jobs submitted
    from here and make them believe they are a one-rank torchrun world."""
    if dist.is_initialized():
        return
    os.environ.setdefault("LOCAL_RANK", "0")
    backend = "nccl" if device == "cuda" else "gloo"
    dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def main_only(log: Callable[[str], None]) -> Callable[[str], None]:
    """`log` on rank 0; silence on the others (each rank computes the same lines)."""
    return log if is_main() else _quiet


def _quiet(_: str) -> None:
    return None


def barrier() -> None:
    if _active():
        dist.barrier()


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank `src`'s value on every rank (a run directory, validation metrics, a decision)."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]  # type: ignore[no-any-return]


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """The sum over ranks of a tensor (returned; the argument is left as it is)."""
    if not _active():
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def all_reduce_grads_(params: Iterable[torch.nn.Parameter], average: bool = False) -> None:
    """Sum (or average) the parameters' gradients over ranks in place, as one flat buffer.

    A parameter without a gradient on this rank counts as zeros, so ranks that took no sample agree.
    """
    if not _active():
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    if average:
        flat /= dist.get_world_size()
    offset = 0
    for p in params:
        p.grad = flat[offset : offset + p.numel()].view_as(p).clone()
        offset += p.numel()


def broadcast_module_(module: torch.nn.Module, src: int = 0) -> None:
    """Rank `src`'s parameters and buffers on every rank (a model built from the same seed already agrees;
    this makes it so whatever built it, as DDP does)."""
    if not _active():
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=src)


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """The torch RNG seed of one epoch on one rank (dropout): a pure function, so a resumed run needs no
    saved RNG state and every rank draws its own masks."""
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)
