"""Torch engine vs DeepSpeed ZeRO-2 on one GPU: training throughput and peak memory, side by side.

    .venv/bin/python benchmarks/gpu_engine.py [--dataset ml-1m] [--steps 200] [--batch 2048] [--json OUT]
    .venv/bin/python benchmarks/gpu_engine.py --device cpu --steps 3 --dataset gowalla-100   (smoke test)

Both engines train the same SASRec of ML-1M's shape (d = 128, D = 256, 2 layers, 8 heads, LinRec attention,
tied output layer, full-softmax chunked CE) from the same initialisation on the same steps (windows of
epoch 1, `--batch` target positions each), bf16 autocast on CUDA, one process. After `--warmup` untimed
steps, `--steps` steps are timed (synchronised); throughput is target positions per second. Peak memory
is `torch.cuda.max_memory_allocated` from the engine's creation on (weights, optimizer state, activations);
on a CPU it is the process's maximum resident set so far (not comparable between the two). The data
directory is $DNSREC_DATA_DIR. Not run in CI: it needs a GPU (it refuses to start without one unless
`--device cpu`).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dnsrec.config import ModelConfig, TrainConfig
from dnsrec.data import load_dataset
from dnsrec.pipeline import build_model
from dnsrec.train.device import Placement
from dnsrec.train.engine import make_engine
from dnsrec.train.loop import TrainingSamples, window_loss


def step_indices(samples: TrainingSamples, batch: int, n: int) -> list[np.ndarray]:
    """The first `n` steps of training (epochs 1, 2, ... in their seeded order)."""
    steps: list[np.ndarray] = []
    epoch = 0
    while len(steps) < n:
        epoch += 1
        steps.extend(samples.steps(batch, np.random.default_rng([0, epoch])))
    return steps[:n]


def peak_mib(placement: Placement) -> float:
    if placement.device.type == "cuda":
        return torch.cuda.max_memory_allocated(placement.device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def sync(placement: Placement) -> None:
    if placement.device.type == "cuda":
        torch.cuda.synchronize()


def measure(engine_name: str, args: argparse.Namespace, data: Any, placement: Placement) -> dict[str, Any]:
    samples = TrainingSamples(data, "window", placement.device)
    steps = step_indices(samples, args.batch, args.warmup + args.steps)
    torch.manual_seed(0)
    shape = ModelConfig(attention=args.attention, d=args.d, inner=args.inner, layers=args.layers, heads=args.heads)
    model = build_model(shape, data).to(placement.device)
    if placement.device.type == "cuda":
        gc.collect()  # the other engine's model and optimizer state
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(placement.device)
    cfg = TrainConfig(lr=1e-3, batch=args.batch, engine=engine_name, zero_stage=2, device=placement.device.type)
    engine = make_engine(model, window_loss(placement), cfg, placement, batch=args.batch, weight_decay=0.0)
    engine.set_training(True)
    losses = []
    for i, idx in enumerate(steps):
        if i == args.warmup:
            sync(placement)
            t0 = time.perf_counter()
        losses.append(engine.train_step(idx, samples.counts, samples.get))
    sync(placement)
    seconds = time.perf_counter() - t0
    targets = int(sum(int(samples.counts[idx].sum()) for idx in steps[args.warmup :]))
    label = "torch" if engine_name == "torch" else "deepspeed ZeRO-2"
    return {
        "engine": label,
        "steps": args.steps,
        "targets": targets,
        "seconds": seconds,
        "targets_per_s": targets / seconds,
        "peak_mib": peak_mib(placement),
        "final_loss": losses[-1],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="ml-1m")
    ap.add_argument("--steps", type=int, default=200, help="timed steps per engine")
    ap.add_argument("--warmup", type=int, default=10, help="untimed steps first (CUDA kernels, allocator)")
    ap.add_argument("--batch", type=int, default=2048, help="target positions per step")
    ap.add_argument("--attention", default="linear", choices=["linear", "softmax"])
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--inner", type=int, default=256)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: a smoke test only")
    ap.add_argument("--json", type=Path, help="also write the two rows to this JSON file")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_engine.py: no CUDA device on this machine; this benchmark compares engines on a GPU "
            "(for a smoke test of the script itself: --device cpu --steps 3 --dataset gowalla-100)",
            file=sys.stderr,
        )
        return 2
    if args.steps < 1 or args.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")
    placement = Placement.resolve(args.device, "bf16" if args.device == "cuda" else "fp32")
    data = load_dataset(args.dataset)
    print(
        f"{data.name}: {data.n_users:,} users, {data.n_items:,} items, N={data.max_len}; {placement.describe()}; "
        f"{args.steps} timed steps of {args.batch} targets after {args.warmup} warm-up steps"
    )
    rows = [measure(name, args, data, placement) for name in ("torch", "deepspeed")]
    print(f"{'engine':<18}{'targets/s':>12}{'peak MiB':>11}{'seconds':>9}{'final loss':>12}")
    for r in rows:
        print(
            f"{r['engine']:<18}{r['targets_per_s']:>12,.0f}{r['peak_mib']:>11,.0f}{r['seconds']:>9.2f}"
            f"{r['final_loss']:>12.4f}"
        )
    torch_row, ds_row = rows
    print(
        f"deepspeed / torch: throughput x{ds_row['targets_per_s'] / torch_row['targets_per_s']:.3f}, "
        f"peak memory x{ds_row['peak_mib'] / torch_row['peak_mib']:.3f}"
        + ("" if args.device == "cuda" else " (CPU: resident set, not comparable)")
    )
    if args.json:
        args.json.write_text(json.dumps({"device": placement.describe(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
