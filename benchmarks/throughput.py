"""CPU training throughput as a fraction of the machine's matmul rate, before and after, side by side in one run.

    .venv/bin/python benchmarks/throughput.py [--datasets ml-100k ml-1m] [--steps 12] [--threads 1] [--profile]

For each dataset, SASRec-LinRec at the paper's baseline shape (d = 128, D = 256, 2 layers, 8 heads, dropout
0.2, batch 2048 target positions, window training as `dnsrec train` runs it):

1. the matmul rate of THIS machine at the model's sizes: torch.matmul of every product a training step
   computes (the linear layers at the step's positions and the scoring layer at its targets, forward and
   both backward products), each timed alone; rate = their FLOPs / their summed time;
2. training steps of two models with the same initial weights fed the same batches, alternating step by
   step so both see the same machine load: `before` runs the code as it was before issue 11's changes
   (the chunked CE with two exp passes, the quadratic causal LinRec form (Q'K'^T masked) V with the
   feature map on strided head views; copies of that code live below), `after` runs the
   package's current code. Their losses must agree to float tolerance (printed);
3. achieved FLOP/s = 3 x (forward FLOPs) / step time (process CPU time: with --threads 1 it is the time
   the work took even on a loaded machine; wall time is printed beside it), with the forward FLOPs from
   dnsrec.nas.flops (the layers per real input position, LinRec counted in its prefix-sum form, plus the
   scoring layer 2 d n_items per target), and its fraction of the matmul rate. Seconds per epoch are
   extrapolated from `--steps` steps spread over the epoch's shuffled steps (after one warm-up step each).

`--profile` prints torch.profiler's table of one `after` step. Keep --threads at 1 or 2 on a shared machine.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor

import dnsrec.models.layers as layers_module
import dnsrec.train.loss as loss_module
from dnsrec.data import load_dataset
from dnsrec.models import SASRec, SASRecConfig
from dnsrec.models.attention import causal_mask, linrec_feature
from dnsrec.nas.flops import model_flops
from dnsrec.train.device import Placement
from dnsrec.train.loop import TrainingSamples, train_step

# ---------------------------------------------------------------------------------------------------------
# The code before issue 11's throughput changes (commit c8ab156), kept here only to be timed beside the new.


class _CrossEntropyBefore(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, hidden: Tensor, weight: Tensor, targets: Tensor, chunk_rows: int, compute_dtype: Any, denom: float
    ) -> Tensor:
        m = hidden.shape[0]
        acc = torch.promote_types(hidden.dtype, torch.float32)
        w = weight.to(compute_dtype)
        grad_hidden = torch.empty(hidden.shape, dtype=acc, device=hidden.device)
        grad_weight = torch.zeros(weight.shape, dtype=acc, device=weight.device)
        total = torch.zeros((), dtype=acc, device=hidden.device)
        for start in range(0, m, chunk_rows):
            h = hidden[start : start + chunk_rows].to(compute_dtype)
            t = targets[start : start + chunk_rows]
            logits = (h @ w.T).to(acc)
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, t[:, None])[:, 0]).sum()
            probs = torch.exp(logits.sub_(lse[:, None]))
            probs[torch.arange(len(t), device=t.device), t] -= 1.0
            p = probs.to(compute_dtype)
            grad_hidden[start : start + chunk_rows] = (p @ w).to(acc)
            grad_weight += (p.T @ h).to(acc)
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.dtypes = (hidden.dtype, weight.dtype)
        ctx.denominator = denom
        return total / denom

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        grad_hidden, grad_weight = ctx.saved_tensors
        scale = grad_out / ctx.denominator
        h_dtype, w_dtype = ctx.dtypes
        return (grad_hidden * scale).to(h_dtype), (grad_weight * scale).to(w_dtype), None, None, None, None


def _linear_attention_before(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor) -> Tensor:
    qf, kf = linrec_feature(q), linrec_feature(k)
    kf = kf * key_mask[:, None, :, None].to(kf.dtype)
    n, dh = q.shape[-2], q.shape[-1]
    scores = qf @ kf.transpose(-2, -1)
    scores = scores.masked_fill(~causal_mask(n, q.device), 0.0)
    return (scores @ v) / math.sqrt(dh)


@contextlib.contextmanager
def code_before() -> Iterator[None]:
    """The package with the pre-change CE and LinRec attention swapped in (restored on exit)."""
    saved = (loss_module._ChunkedCrossEntropy, layers_module.linear_attention)
    loss_module._ChunkedCrossEntropy = _CrossEntropyBefore  # type: ignore[misc]
    layers_module.linear_attention = _linear_attention_before
    try:
        yield
    finally:
        loss_module._ChunkedCrossEntropy, layers_module.linear_attention = saved  # type: ignore[misc]


VARIANTS: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
    "before": code_before,
    "after": contextlib.nullcontext,
}

# ---------------------------------------------------------------------------------------------------------


def cpu_time(fn: Callable[[], object], reps: int) -> float:
    """Median process CPU seconds of fn() (after one warm-up call): with 1 thread, the time the work itself
    took, whatever else the shared machine runs (wall time under load counts other processes' turns)."""
    fn()
    times = []
    for _ in range(reps):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return statistics.median(times)


def matmul_rate(products: list[tuple[int, int, int]], reps: int = 7) -> tuple[float, list[dict[str, Any]]]:
    """FLOP/s of torch.matmul over the (m, k, n) products, each timed alone (best of `reps`)."""
    rows, flops, seconds = [], 0.0, 0.0
    for m, k, n in products:
        a, b = torch.randn(m, k), torch.randn(k, n)
        s = cpu_time(lambda a=a, b=b: a @ b, reps)
        f = 2.0 * m * k * n
        flops, seconds = flops + f, seconds + s
        rows.append({"shape": (m, k, n), "gflop_s": f / s / 1e9})
    return flops / seconds, rows


def step_products(cfg: SASRecConfig, positions: int, targets: int) -> list[tuple[int, int, int]]:
    """The (m, k, n) products of one training step: each linear layer and the scoring layer, forward
    (x W), backward to the input (g W^T) and to the weight (x^T g)."""
    shapes = []
    for h, inner in cfg.layer_widths():
        shapes += [(positions, cfg.d, h)] * 3 + [(positions, h, h), (positions, cfg.d, inner), (positions, inner, h)]
    shapes.append((targets, cfg.d, cfg.n_items))
    out = []
    for m, k, n in shapes:
        out += [(m, k, n), (m, n, k), (k, m, n)]
    return out


def step_flops(cfg: SASRecConfig, positions: int, targets: int) -> float:
    """3 x forward FLOPs (dnsrec.nas.flops): the layers at `positions` real positions, scoring at `targets`."""
    f = model_flops(cfg)
    return 3.0 * (f.total / cfg.max_len * positions + f.scoring * targets)


def run_dataset(name: str, args: argparse.Namespace) -> dict[str, Any]:
    data = load_dataset(name)
    placement = Placement.resolve("cpu", "fp32")
    cfg = SASRecConfig(n_items=data.n_items, max_len=data.max_len, d=128, inner=256, n_layers=2, n_heads=8)
    samples = TrainingSamples(data, "window", torch.device("cpu"))
    steps = samples.steps(args.batch, np.random.default_rng(0))
    picked = [steps[int(i)] for i in np.linspace(0, len(steps) - 1, args.steps + 1)]
    batches = [samples.get(i) for i in picked]
    positions = [int((inp > 0).sum()) for inp, _ in batches]
    targets = [int((tgt > 0).sum()) for _, tgt in batches]

    models, optimizers = {}, {}
    for variant in VARIANTS:
        torch.manual_seed(0)
        models[variant] = SASRec(cfg).train()
        optimizers[variant] = torch.optim.Adam(models[variant].parameters(), lr=1e-3)
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}  # process CPU seconds per step
    walls: dict[str, list[float]] = {v: [] for v in VARIANTS}
    losses: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for i, (inputs, tgt) in enumerate(batches):
        order = list(VARIANTS) if i % 2 == 0 else list(VARIANTS)[::-1]  # neither always runs first
        for variant in order:
            torch.manual_seed(1000 + i)  # the same dropout masks for both
            with VARIANTS[variant]():
                t, w = time.process_time(), time.perf_counter()
                loss = train_step(models[variant], inputs, tgt, placement)
                loss.backward()
                optimizers[variant].step()
                optimizers[variant].zero_grad(set_to_none=True)
                elapsed, wall = time.process_time() - t, time.perf_counter() - w
            losses[variant].append(float(loss.detach()))
            if i > 0:  # the first step of each is a warm-up
                times[variant].append(elapsed)
                walls[variant].append(wall)

    products = step_products(cfg, int(np.mean(positions[1:])), int(np.mean(targets[1:])))
    rate, per_shape = matmul_rate(products)
    flops = float(np.mean([step_flops(cfg, p, t) for p, t in zip(positions[1:], targets[1:], strict=True)]))
    out: dict[str, Any] = {
        "dataset": name,
        "items": data.n_items,
        "steps_per_epoch": len(steps),
        "timed_steps": args.steps,
        "mean_positions": float(np.mean(positions[1:])),
        "mean_targets": float(np.mean(targets[1:])),
        "step_gflop": flops / 1e9,
        "matmul_gflop_s": rate / 1e9,
        "matmul_shapes": per_shape,
        "max_rel_loss_diff": max(abs(a - b) / abs(b) for a, b in zip(losses["before"], losses["after"], strict=True)),
    }
    for variant in VARIANTS:
        per_step = statistics.mean(times[variant])
        out[variant] = {
            "s_per_step": per_step,
            "wall_s_per_step": statistics.mean(walls[variant]),
            "s_per_epoch_extrapolated": per_step * len(steps),
            "gflop_s": flops / per_step / 1e9,
            "fraction_of_matmul_rate": flops / per_step / rate,
        }
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        inputs, tgt = batches[1]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            loss = train_step(models["after"], inputs, tgt, placement)
            loss.backward()
            optimizers["after"].step()
            optimizers["after"].zero_grad(set_to_none=True)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))
    return out


def report(r: dict[str, Any], threads: int) -> None:
    print(
        f"\n{r['dataset']} ({r['items']:,} items), {threads} thread(s): {r['steps_per_epoch']} steps/epoch; "
        f"{r['timed_steps']} steps timed per variant (spread over the epoch, alternating), s/epoch EXTRAPOLATED "
        f"from them; a step: {r['mean_positions']:.0f} positions, {r['mean_targets']:.0f} targets, "
        f"{r['step_gflop']:.2f} GFLOP (3 x forward, dnsrec.nas.flops + scoring)"
    )
    print(
        f"  matmul rate at the step's product sizes: {r['matmul_gflop_s']:.1f} GFLOP/s "
        "(times below are process CPU seconds; wall seconds in brackets)"
    )
    for variant in VARIANTS:
        v = r[variant]
        print(
            f"  {variant:<6}: {v['s_per_step']:.3f} s/step ({v['wall_s_per_step']:.3f}), "
            f"{v['s_per_epoch_extrapolated']:7.1f} s/epoch, "
            f"{v['gflop_s']:5.1f} GFLOP/s = {v['fraction_of_matmul_rate']:.2f} of the matmul rate"
        )
    b, a = r["before"], r["after"]
    print(
        f"  after / before: {b['s_per_step'] / a['s_per_step']:.2f}x faster; "
        f"losses agree to {r['max_rel_loss_diff']:.1e} (relative)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["ml-100k", "ml-1m"])
    ap.add_argument("--steps", type=int, default=12, help="timed steps per variant (after one warm-up)")
    ap.add_argument("--batch", type=int, default=2048, help="target positions per step")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--profile", action="store_true", help="print torch.profiler's table of one step")
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error("--steps must be >= 1")
    torch.set_num_threads(args.threads)
    for name in args.datasets:
        report(run_dataset(name, args), args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
