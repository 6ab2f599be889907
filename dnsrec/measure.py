"""What a run measures of itself besides its metrics: where and on what code it ran (`environment`: host,
device, ranks, git commit, versions), its peak memory, and the wall time of scoring the test users.
"""

from __future__ import annotations

import platform
import resource
import subprocess
import time
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
    inputs = evaluator.inputs("test")
    seqs, lengths = torch.from_numpy(inputs.seqs), torch.from_numpy(inputs.lengths)
    score = scorer_of(model, placement)
    model.eval()
    if placement.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(seqs), batch):
            score(seqs[i : i + batch].to(placement.device), lengths[i : i + batch].to(placement.device))
    if placement.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0
