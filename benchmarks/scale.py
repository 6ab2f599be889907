"""Memory and speed at Gowalla scale (issue 11): SASRec-LinRec training, one DNS-Rec search epoch and both
evaluation protocols on synth-gowalla (164,532 items), on the CPU or a GPU. One JSON on stdout (also --out).

    .venv/bin/python benchmarks/scale.py --device cpu [--threads 2] [--batch 2048] [--out scale.json]
    .venv/bin/python benchmarks/scale.py --smoke                  # tiny sizes, seconds (a test runs it)

synth-gowalla is SYNTHETIC (dnsrec.data.synth: a benchmark input for speed and memory, never for accuracy).
It is written once, as `dnsrec data synth synth-gowalla --data-dir DIR` does, into --data-dir (default
~/.cache/dnsrec/scale-data, never the repository) and read through the project's loader and cache.

Each phase runs in its own child process, so its peak memory is its own: the peak resident set of the
process (CPU; data, model and everything else included) or the peak allocated GPU memory.
- `train`: SASRec-LinRec as `dnsrec train` builds it (d = 128, D = 256, 2 layers, 8 heads, N = 100) through
  the project's engine (window samples, Adam, the chunked CE with `train.ce_chunk`) at --batch target
  positions per step: --train-steps steps spread over the epoch's shuffled steps are timed after one
  warm-up step, and seconds per epoch EXTRAPOLATED to the epoch's number of steps;
- `search`: one DNS-Rec search epoch (the run config's supernet for synth-gowalla: d = 64, D = 256, 4 layers,
  search.batch 1024, an architecture step every search.arch_every weight steps on the same training batch):
  --search-steps weight steps and as many architecture steps timed, the epoch extrapolated (plus its
  validation pass, timed as `eval` times one);
- `eval`: the Evaluator built for synth-gowalla (both splits' inputs and pop100 negatives), then each protocol
  alone on the validation split: --eval-users users (batches spread over the split) timed and EXTRAPOLATED to
  the whole split; full ranking is scored --eval-batch users at a time, so its memory is bounded by
  eval_batch x (n_items + 1) scores whatever the number of users;
- `train_unchunked` (--unchunked): the `train` phase with train.ce_chunk=0 (all logits at once), to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dnsrec.data.sequences import SequenceData
from dnsrec.train.device import Placement

GIB = 2**30
PHASES = ("train", "search", "eval")
DEFAULT_DATA_DIR = Path("~/.cache/dnsrec/scale-data").expanduser()


def log(line: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def sync(placement: Placement) -> None:
    if placement.device.type == "cuda":
        torch.cuda.synchronize(placement.device)


def peak_gib(placement: Placement) -> float:
    """Peak allocated GPU memory, or on the CPU the process's peak resident set (Linux reports KiB)."""
    if placement.device.type == "cuda":
        return torch.cuda.max_memory_allocated(placement.device) / GIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB


def rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / GIB


def timed(fn: Callable[[], object], placement: Placement, cpu: list[float] | None = None) -> float:
    """Wall seconds of fn(); its process CPU seconds are appended to `cpu` (on a shared machine, the time
    the work itself took: with one thread, wall minus the other processes' turns)."""
    sync(placement)
    t, c = time.perf_counter(), time.process_time()
    fn()
    sync(placement)
    if cpu is not None:
        cpu.append(time.process_time() - c)
    return time.perf_counter() - t


def spread(items: list[Any], k: int) -> list[Any]:
    """k + 1 items spread evenly over `items` (the first one is a warm-up)."""
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, min(k + 1, len(items)))]


# ------------------------------------------------------------------------------------------------ data


def smoke_spec() -> Any:
    from dnsrec.data.synth import SynthSpec

    return SynthSpec(users=60, items=150, interactions=2_500, seed=0)


def ensure_data(args: argparse.Namespace) -> None:
    """Write synth-gowalla's check-ins (the preset's spec; a tiny one with --smoke) unless present."""
    from dnsrec.data.synth import SYNTH_FILES, SYNTH_PRESETS, generate, write_checkins

    path = args.data_dir / SYNTH_FILES["synth-gowalla"]
    if path.exists():
        return
    spec = smoke_spec() if args.smoke else SYNTH_PRESETS["synth-gowalla"]
    t = time.perf_counter()
    write_checkins(generate(spec), path)
    log(f"wrote {path} ({spec.users:,} users, {spec.items:,} items) in {time.perf_counter() - t:.1f}s")


def load(args: argparse.Namespace) -> SequenceData:
    from dnsrec.data import load_dataset

    return load_dataset("synth-gowalla", data_dir=args.data_dir, cache_dir=args.data_dir / "cache")


# ------------------------------------------------------------------------------------------------ phases


def train_config(args: argparse.Namespace, ce_chunk: int) -> Any:
    from dnsrec.config import TrainConfig

    return TrainConfig(
        batch=args.batch, device=args.device, precision=args.precision, progress=False, ce_chunk=ce_chunk
    )


def phase_train(args: argparse.Namespace, data: SequenceData, ce_chunk: int) -> dict[str, Any]:
    from dnsrec.models import SASRec, SASRecConfig
    from dnsrec.train.engine import make_engine
    from dnsrec.train.loop import TrainingSamples, window_loss

    cfg = train_config(args, ce_chunk)
    placement = Placement.resolve(cfg.device, cfg.precision)
    torch.manual_seed(0)
    shape = dict(d=16, inner=16, n_layers=1, n_heads=2) if args.smoke else dict(d=128, inner=256, n_layers=2, n_heads=8)
    model = SASRec(SASRecConfig(n_items=data.n_items, max_len=data.max_len, **shape)).to(placement.device)  # type: ignore[arg-type]
    engine = make_engine(model, window_loss(placement, ce_chunk), cfg, placement, batch=cfg.batch, weight_decay=0.0)
    samples = TrainingSamples(data, "window", placement.device)
    steps = samples.steps(cfg.batch, np.random.default_rng([0, 1]), cfg.bucket)
    engine.set_training(True)
    cpu: list[float] = []
    seconds = [
        timed(lambda idx=idx: engine.train_step(idx, samples.counts, samples.get), placement, cpu)
        for idx in spread(steps, args.train_steps)
    ]
    per_step = statistics.mean(seconds[1:] or seconds)
    cpu_per_step = statistics.mean(cpu[1:] or cpu)
    return {
        "model": {"d": model.cfg.d, "inner": model.cfg.inner, "layers": model.cfg.n_layers, "heads": model.cfg.n_heads},
        "precision": "bf16" if placement.bf16 else "fp32",
        "batch_targets": cfg.batch,
        "ce_chunk": ce_chunk,
        "steps_per_epoch": len(steps),
        "timed_steps": len(seconds) - 1,
        "s_per_step": per_step,
        "s_per_epoch_extrapolated": per_step * len(steps),
        "targets_per_s": samples.n_targets / (per_step * len(steps)),
        "cpu_s_per_step": cpu_per_step,
        "cpu_s_per_epoch_extrapolated": cpu_per_step * len(steps),
    }


def phase_search(args: argparse.Namespace, data: SequenceData) -> dict[str, Any]:
    from dnsrec.compose import compose
    from dnsrec.config.run import RunConfig
    from dnsrec.evaluate import Evaluator
    from dnsrec.nas.arch_step import ArchBatch, arch_step
    from dnsrec.nas.controllers import Controllers
    from dnsrec.nas.search import candidate_flops, supernet_loss, weight_step
    from dnsrec.nas.supernet import Supernet
    from dnsrec.train.engine import make_engine
    from dnsrec.train.loop import TrainingSamples

    overrides = ["dataset=synth-gowalla", f"train.device={args.device}", f"train.precision={args.precision}"]
    if args.smoke:
        overrides += ["dataset.d=16", "dataset.inner=32", "search.layers=2", "search.batch=256"]
    cfg = RunConfig.from_mapping(compose("run", overrides))
    space = cfg.space(data)
    placement = Placement.resolve(cfg.train.device, cfg.train.precision)
    torch.manual_seed(0)
    supernet = Supernet(space).to(placement.device)
    controllers = Controllers(space.n_layers, space.m, cfg.search.per_layer_alpha, cfg.search.relax).to(
        placement.device
    )
    engine = make_engine(
        supernet,
        supernet_loss(placement, cfg.train.ce_chunk),
        cfg.train,
        placement,
        batch=cfg.search.batch,
        weight_decay=cfg.search.weight_decay,
    )
    a_opt = torch.optim.Adam(controllers.parameters(), lr=cfg.search.arch_lr)
    samples = TrainingSamples(data, "window", placement.device)
    steps = samples.steps(cfg.search.batch, np.random.default_rng([0, 1]), cfg.train.bucket)
    flops = candidate_flops(space).to(placement.device)
    generator = torch.Generator(device=placement.device).manual_seed(0)
    engine.set_training(True)
    weight_s, arch_s, weight_cpu, arch_cpu = [], [], [], []  # type: ignore[var-annotated]
    for k, idx in enumerate(spread(steps, args.search_steps)):
        weight = partial(weight_step, engine, controllers, idx, samples.counts, samples.get, k, generator)
        weight_s.append(timed(weight, placement, weight_cpu))
        batch = ArchBatch.windows(*samples.get(idx))
        arch = partial(arch_step, supernet, controllers, a_opt, batch, k, cfg.search.lam, flops, placement, generator)
        arch_s.append(timed(partial(arch, denominator=int(samples.counts[idx].sum())), placement, arch_cpu))
    w, a = statistics.mean(weight_s[1:] or weight_s), statistics.mean(arch_s[1:] or arch_s)
    n_arch = len(steps) // cfg.search.arch_every
    # The epoch's validation pass scores the supernet on the valid split, both protocols: timed on a sample.
    engine.set_training(False)
    evaluator = Evaluator(data, batch_size=cfg.train.eval_batch, device=placement.device)
    with torch.no_grad():
        p, q = controllers(len(steps), noise=False)

    def score(seqs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        with placement.autocast():
            return supernet.score(seqs, lengths, p, q)  # type: ignore[no-any-return]

    valid = sampled_eval(evaluator, score, ("pop100", "full"), args, placement)
    valid_s, valid_cpu = (
        valid["s_per_split_extrapolated"],
        valid.get("cpu_s_per_split_extrapolated", valid.get("cpu_s")),
    )
    weight_cpu_s, arch_cpu_s = statistics.mean(weight_cpu[1:] or weight_cpu), statistics.mean(arch_cpu[1:] or arch_cpu)
    return {
        "supernet": {"d": space.d, "inner": space.inner, "layers": space.n_layers, "heads": space.n_heads},
        "precision": "bf16" if placement.bf16 else "fp32",
        "search_batch": cfg.search.batch,
        "arch_every": cfg.search.arch_every,
        "steps_per_epoch": len(steps),
        "arch_steps_per_epoch": n_arch,
        "timed_steps": len(weight_s) - 1,
        "s_per_weight_step": w,
        "cpu_s_per_weight_step": weight_cpu_s,
        "cpu_s_per_arch_step": arch_cpu_s,
        "s_per_arch_step": a,
        "valid_eval_s_extrapolated": valid_s,
        "s_per_epoch_extrapolated": len(steps) * w + n_arch * a + valid_s,
        "valid_eval_cpu_s_extrapolated": valid_cpu,
        "cpu_s_per_epoch_extrapolated": len(steps) * weight_cpu_s + n_arch * arch_cpu_s + valid_cpu,
    }


def sampled_eval(
    evaluator: Any, scorer: Any, protocols: tuple[str, ...], args: argparse.Namespace, placement: Placement
) -> dict[str, Any]:
    """Seconds to rank the valid split under `protocols`: whole when --eval-users covers it, else
    --eval-users users in batches spread over the split (rows are sorted by history length), extrapolated."""
    n_users, size = evaluator.data.n_users, evaluator.batch_size
    cpu: list[float] = []
    if args.eval_users >= n_users:
        with torch.no_grad():
            s = timed(lambda: evaluator.ranks(scorer, "valid", protocols), placement, cpu)
        return {
            "users_timed": n_users,
            "s_per_split_extrapolated": s,
            "cpu_s_per_split_extrapolated": cpu[0],
            "extrapolated": False,
        }
    state = evaluator._state["valid"]  # the benchmark times the Evaluator's own batch step on a sample
    starts = spread(list(range(0, n_users, size)), max(1, args.eval_users // size))
    seconds, users = [], []
    with torch.no_grad():
        for lo in starts:
            hi = min(lo + size, n_users)
            seconds.append(
                timed(lambda lo=lo, hi=hi: evaluator._batch_ranks(scorer, state, lo, hi, protocols), placement, cpu)
            )
            users.append(hi - lo)
    timed_s, timed_users = sum(seconds[1:]), sum(users[1:])  # the first batch is a warm-up
    return {
        "users_timed": timed_users,
        "s_per_split_extrapolated": timed_s / timed_users * n_users,
        "cpu_s_per_split_extrapolated": sum(cpu[1:]) / timed_users * n_users,
        "extrapolated": True,
    }


def phase_eval(args: argparse.Namespace, data: SequenceData) -> dict[str, Any]:
    from dnsrec.evaluate import Evaluator
    from dnsrec.models import SASRec, SASRecConfig
    from dnsrec.train.loop import scorer_of

    placement = Placement.resolve(args.device, args.precision)
    torch.manual_seed(0)
    shape = dict(d=16, inner=16, n_layers=1, n_heads=2) if args.smoke else dict(d=128, inner=256, n_layers=2, n_heads=8)
    model = SASRec(SASRecConfig(n_items=data.n_items, max_len=data.max_len, **shape)).to(placement.device).eval()  # type: ignore[arg-type]
    t = time.perf_counter()
    evaluator = Evaluator(data, batch_size=args.eval_batch, device=placement.device)
    out: dict[str, Any] = {"eval_batch": args.eval_batch, "evaluator_build_s": time.perf_counter() - t}
    score = scorer_of(model, placement)
    for protocol in ("pop100", "full"):
        out[protocol] = sampled_eval(evaluator, score, (protocol,), args, placement)
    return out


def run_phase(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    placement = Placement.resolve(args.device, args.precision)
    if placement.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(placement.device)
    t = time.perf_counter()
    data = load(args)
    loaded = {"load_s": time.perf_counter() - t, "rss_after_load_gib": rss_gib()}
    if args.phase == "train":
        row = phase_train(args, data, args.ce_chunk)
    elif args.phase == "train_unchunked":
        row = phase_train(args, data, 0)
    elif args.phase == "search":
        row = phase_search(args, data)
    else:
        row = phase_eval(args, data)
    what = "peak_gpu_gib" if placement.device.type == "cuda" else "peak_rss_gib"
    return {**row, **loaded, what: peak_gib(placement), "device": placement.describe(), "threads": args.threads}


# ------------------------------------------------------------------------------------------------ driver


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--smoke", action="store_true", help="tiny synthetic data and models, in-process (a test)")
    ap.add_argument("--data-dir", type=Path, help=f"where synth-gowalla is written/read (default {DEFAULT_DATA_DIR})")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--batch", type=int, default=2048, help="training target positions per step")
    ap.add_argument("--ce-chunk", type=int, default=1 << 25, help="train.ce_chunk: logits per CE chunk")
    ap.add_argument("--train-steps", type=int, default=6, help="timed training steps (after one warm-up)")
    ap.add_argument("--search-steps", type=int, default=3, help="timed weight + architecture steps")
    ap.add_argument("--eval-users", type=int, default=4096, help="users timed per protocol (then extrapolated)")
    ap.add_argument("--eval-batch", type=int, default=256, help="users per evaluation batch (train.eval_batch)")
    ap.add_argument("--phases", nargs="+", default=list(PHASES), choices=[*PHASES, "train_unchunked"])
    ap.add_argument("--unchunked", action="store_true", help="also train with train.ce_chunk=0 (all logits)")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    ap.add_argument("--phase", help=argparse.SUPPRESS)  # a child process: run this phase, print its JSON
    args = ap.parse_args(argv)
    if args.smoke:
        args.device, args.batch, args.train_steps, args.search_steps, args.eval_users = "cpu", 512, 2, 1, 10**9
        args.eval_batch, args.threads = 16, 1
    tmp = None
    if args.data_dir is None:
        if args.smoke:
            tmp = tempfile.TemporaryDirectory(prefix="dnsrec-scale-smoke-")
            args.data_dir = Path(tmp.name)
        else:
            args.data_dir = DEFAULT_DATA_DIR
    if args.phase:
        print(json.dumps(run_phase(args)))
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("scale.py: no CUDA device here (use --device cpu)", file=sys.stderr)
        return 2
    ensure_data(args)
    phases = [*args.phases, *(["train_unchunked"] if args.unchunked else [])]
    out: dict[str, Any] = {
        "benchmark": "benchmarks/scale.py",
        "dataset": "synth-gowalla (synthetic: speed and memory only, never accuracy)",
        "smoke": args.smoke,
        "data_dir": str(args.data_dir),
        "argv": sys.argv[1:] if argv is None else argv,
    }
    data = load(args)  # builds the cache once, before the children read it
    out["data"] = {"users": data.n_users, "items": data.n_items, "interactions": data.n_interactions, "N": data.max_len}
    del data
    for phase in phases:
        log(f"{phase} ...")
        t = time.perf_counter()
        if args.smoke:  # in-process: seconds instead of a torch import per phase (peaks are then cumulative)
            args.phase = phase
            out[phase] = run_phase(args)
            args.phase = None
        else:
            child = [sys.executable, str(Path(__file__).resolve()), *(argv if argv is not None else sys.argv[1:])]
            child += ["--phase", phase, "--data-dir", str(args.data_dir)]
            done = subprocess.run(child, capture_output=True, text=True, check=False)
            if done.returncode:
                out[phase] = {"error": done.stderr[-3000:]}
            else:
                out[phase] = json.loads(done.stdout.strip().splitlines()[-1])
        log(f"{phase} done in {time.perf_counter() - t:.1f}s: {out[phase]}")
    text = json.dumps(out, indent=2)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    if tmp is not None:
        tmp.cleanup()
    return 1 if any(isinstance(v, dict) and "error" in v for v in out.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
