"""What a run measures of itself besides its metrics: where and on what code it ran (`environment`: host,
device, ranks, git commit, versions), its peak memory over the whole run, and the wall time and memory of
scoring the test users (the paper's Table 4: inference time and memory).
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import time
from collections.abc import Callable
from itertools import chain
from pathlib import Path

import torch

from dnsrec.evaluate import Evaluator
from dnsrec.models import SASRec
from dnsrec.train import distributed
from dnsrec.train.device import Placement
from dnsrec.train.loop import scorer_of


def environment(placement: Placement) -> dict[str, str]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "host": platform.node(),
        "device": placement.describe(),
        "ranks": str(distributed.world_size()),
        "git_commit": commit,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def peak_memory_mb(placement: Placement) -> float:
    if placement.device.type == "cuda":
        return torch.cuda.max_memory_allocated(placement.device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def inference_seconds(model: SASRec, evaluator: Evaluator, placement: Placement, batch: int) -> float:
    """Wall time to score every test user against all items (the model alone, no metric computation)."""
    score_test = _test_scoring(model, evaluator, placement, batch)
    if placement.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    score_test()
    if placement.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def inference_memory_mb(model: SASRec, evaluator: Evaluator, placement: Placement, batch: int) -> float:
    """Memory that scoring every test user needs: the model's parameters and buffers plus the most tensor
    memory alive at once on top of them while it scores (`peak_allocated_bytes`). Unlike `peak_memory_mb`,
    nothing the run did before (training, a search) is in it. On CUDA it resets the allocator's peak: read
    `peak_memory_mb` first."""
    static = sum(t.numel() * t.element_size() for t in chain(model.parameters(), model.buffers()))
    scoring = peak_allocated_bytes(_test_scoring(model, evaluator, placement, batch), placement.device)
    return (static + scoring) / 2**20


def peak_allocated_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """The most bytes `fn`'s tensors hold at once beyond what was allocated before it ran: CUDA's allocator
    statistics on a GPU; on a CPU (where torch keeps no such statistics) the running sum of the torch
    profiler's allocation events, each the bytes one tensor allocation adds or its free removes, in time order.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return max(0, torch.cuda.max_memory_allocated(device) - before)
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    # Kineto otherwise writes a "profiler_start/stop" line to stderr for every measurement, into each run's log.
    os.environ.setdefault("KINETO_LOG_LEVEL", "99")
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = prof.profiler.kineto_results.events() if prof.profiler and prof.profiler.kineto_results else []
    changes = sorted(
        (e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]" and e.device_type() == DeviceType.CPU
    )
    alive = peak = 0
    for _, nbytes in changes:
        alive += nbytes
        peak = max(peak, alive)
    return peak


def _test_scoring(model: SASRec, evaluator: Evaluator, placement: Placement, batch: int) -> Callable[[], None]:
    """Scores every test user against all items, `batch` users at a time (results dropped, nothing kept)."""
    inputs = evaluator.inputs("test")
    seqs, lengths = torch.from_numpy(inputs.seqs), torch.from_numpy(inputs.lengths)
    score = scorer_of(model, placement)
    model.eval()

    def run() -> None:
        with torch.no_grad():
            for i in range(0, len(seqs), batch):
                score(seqs[i : i + batch].to(placement.device), lengths[i : i + batch].to(placement.device))

    return run
