"""Top-10 inference speed of a DNS-Rec run's searched model vs SASRec-LinRec and the un-pruned supernet shape,
eager and exported (TorchScript, ONNX) — measured side by side in one run.

    .venv/bin/python benchmarks/inference.py RUN [--rounds 5] [--single 200] [--threads 1] [--json out.json]

RUN is a finished `dnsrec run` directory. Three models of the run's dataset sizes (n_items, N):
- searched: the run's retrained compact model (best.pt), exactly what `dnsrec export` writes;
- sasrec: SASRec-LinRec at the paper's baseline settings, `dnsrec train`'s model defaults (2 layers, d = 128,
  D = 256, 8 heads; dnsrec.config.ModelConfig), as benchmarks/dnsrec_vs_baselines.py trains it;
- unpruned: the un-pruned supernet shape (the same plus the data-aware gates), as result.json's
  `flops.supernet` counts it.
Weights do not change the time, so `sasrec` and `unpruned` keep their initialisation. Each runs eager (torch,
no_grad) and exported (dnsrec.export.write_model, then loaded back as a user loads it: torch.jit.load,
onnxruntime with as many threads as torch). Timed: scores + top-10 for every test user (batches of
--batch users sorted by length, padding trimmed, as the evaluator does), and single users (batch 1, p50/p99
latency over --single users). Every round runs every (model, mode) in a shuffled order; reported are the
medians over rounds, so load from other processes hits all variants alike. Ratios are times divided, so
"x faster" reads as the first's time over the second's.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from dnsrec.config import ModelConfig
from dnsrec.data import load_dataset
from dnsrec.evaluate import split_inputs
from dnsrec.export import FORMATS, load_exported, run_model, write_model
from dnsrec.models import SASRec, SASRecConfig

Fn = Callable[[np.ndarray, np.ndarray], object]
K = 10


def reference_models(run_dir: Path) -> tuple[dict[str, SASRec], str]:
    run = run_model(run_dir)
    cfg, searched = run.result.config, run.model
    base = dict(
        n_items=searched.cfg.n_items,
        max_len=searched.cfg.max_len,
        d=cfg["dataset"]["d"],
        inner=cfg["dataset"]["inner"],
        n_layers=cfg["search"]["layers"],
        n_heads=cfg["search"]["heads"],
        dropout=cfg["dropout"],
        attention=cfg["attention"],
    )
    paper = ModelConfig()
    sasrec = SASRecConfig(
        n_items=searched.cfg.n_items,
        max_len=searched.cfg.max_len,
        d=paper.d,
        inner=paper.inner,
        n_layers=paper.layers,
        n_heads=paper.heads,
        dropout=paper.dropout,
        attention=cfg["attention"],
    )
    torch.manual_seed(0)
    models = {
        "searched": searched,
        "sasrec": SASRec(sasrec),
        "unpruned": SASRec(SASRecConfig(**base, gate_layers=cfg["gates"]["layers"])),  # type: ignore[arg-type]
    }
    for m in models.values():
        m.eval()
    return models, run.result.config["dataset"]["name"]


def eager(model: SASRec) -> Fn:
    def score(seqs: np.ndarray, lengths: np.ndarray) -> torch.Tensor:
        with torch.inference_mode():
            return model.score(torch.from_numpy(seqs), torch.from_numpy(lengths))

    return score


def top_k(fn: Fn) -> Fn:
    def run(seqs: np.ndarray, lengths: np.ndarray) -> torch.Tensor:
        scores = fn(seqs, lengths)
        scores = scores if isinstance(scores, torch.Tensor) else torch.from_numpy(scores)  # type: ignore[arg-type]
        return scores[:, 1:].topk(K, dim=1).indices + 1

    return run


def split_batches(seqs: np.ndarray, lengths: np.ndarray, batch: int) -> list[tuple[np.ndarray, np.ndarray]]:
    order = np.argsort(lengths, kind="stable")
    out = []
    for lo in range(0, len(order), batch):
        idx = order[lo : lo + batch]
        n = int(lengths[idx].max())
        out.append((np.ascontiguousarray(seqs[idx, :n]), np.ascontiguousarray(lengths[idx])))
    return out


def time_split(fn: Fn, batches: list[tuple[np.ndarray, np.ndarray]]) -> float:
    t0 = time.perf_counter()
    for seqs, lengths in batches:
        fn(seqs, lengths)
    return time.perf_counter() - t0


def time_single(fn: Fn, users: list[tuple[np.ndarray, np.ndarray]]) -> list[float]:
    times = []
    for seqs, lengths in users:
        t0 = time.perf_counter()
        fn(seqs, lengths)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a finished `dnsrec run` directory")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--single", type=int, default=200, help="single users timed per round")
    parser.add_argument("--batch", type=int, default=256, help="users per batch for the whole test split")
    # One thread by default: on a machine other jobs share, torch's and onnxruntime's intra-op threads wait for
    # each other when one is descheduled (measured: 2 threads with load 7 on 2 cores made single-user p50 vary 10x).
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime threads (default 1)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="exported formats to time")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    formats = [f for f in args.formats.split(",") if f]

    models, dataset = reference_models(args.run)
    data = load_dataset(dataset)
    test = split_inputs(data, "test")
    batches = split_batches(test.seqs, test.lengths, args.batch)
    rng = np.random.default_rng(0)
    picked = rng.choice(len(test.lengths), size=min(args.single, len(test.lengths)), replace=False)
    singles = [(test.seqs[i : i + 1, : test.lengths[i]].copy(), test.lengths[i : i + 1].copy()) for i in picked]

    fns: dict[tuple[str, str], Fn] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, model in models.items():
            fns[name, "eager"] = top_k(eager(model))
            for fmt in formats:
                path = Path(tmp) / f"{name}.{fmt}"
                write_model(model, fmt, path, {"benchmark": name})
                fns[name, fmt] = top_k(load_exported(path, fmt, threads=args.threads))
        for fn in fns.values():  # warm-up: first calls compile, allocate, pick kernels
            time_split(fn, batches[:2])
            time_single(fn, singles[:5])
        split_s: dict[tuple[str, str], list[float]] = {k: [] for k in fns}
        single_s: dict[tuple[str, str], list[float]] = {k: [] for k in fns}
        keys = list(fns)
        for _ in range(args.rounds):
            random.Random(len(split_s[keys[0]])).shuffle(keys)
            for key in keys:
                split_s[key].append(time_split(fns[key], batches))
                single_s[key].extend(time_single(fns[key], singles))

    modes = ["eager", *formats]
    rows = {}
    for (name, mode), times in split_s.items():
        lat = np.array(single_s[name, mode]) * 1e3
        rows[f"{name}/{mode}"] = {
            "test_split_s": float(np.median(times)),
            "single_p50_ms": float(np.percentile(lat, 50)),
            "single_p99_ms": float(np.percentile(lat, 99)),
        }
    ratios: dict[str, float] = {}
    for metric in ("test_split_s", "single_p50_ms"):
        for mode in modes:
            for other in ("sasrec", "unpruned"):
                ratios[f"{metric}: {other}/{mode} over searched/{mode}"] = (
                    rows[f"{other}/{mode}"][metric] / rows[f"searched/{mode}"][metric]
                )
        for name in models:
            for fmt in formats:
                ratios[f"{metric}: {name}/eager over {name}/{fmt}"] = (
                    rows[f"{name}/eager"][metric] / rows[f"{name}/{fmt}"][metric]
                )
            for fmt in formats:
                if name != "searched":
                    ratios[f"{metric}: {name}/eager over searched/{fmt}"] = (
                        rows[f"{name}/eager"][metric] / rows[f"searched/{fmt}"][metric]
                    )
    searched = models["searched"].cfg
    report = {
        "run": str(args.run),
        "dataset": data.name,
        "test_users": len(test.lengths),
        "n_items": data.n_items,
        "max_len": data.max_len,
        "threads": args.threads,
        "rounds": args.rounds,
        "single_users": len(singles),
        "searched": {"widths": searched.layer_widths(), "d": searched.d, "gate_layers": searched.gate_layers},
        "params": {n: sum(p.numel() for p in m.parameters()) for n, m in models.items()},
        "times": rows,
        "ratios": ratios,
    }
    print(
        f"{data.name}: {len(test.lengths):,} test users, {data.n_items:,} items, N={data.max_len}; "
        f"{args.threads} threads, medians of {args.rounds} rounds; searched widths {searched.layer_widths()} "
        f"(d={searched.d}, L_d={searched.gate_layers}); params {report['params']}"
    )
    print(f"{'model/mode':<24}{'test split s':>14}{'single p50 ms':>15}{'single p99 ms':>15}")
    for key, row in rows.items():
        print(f"{key:<24}{row['test_split_s']:>14.4f}{row['single_p50_ms']:>15.3f}{row['single_p99_ms']:>15.3f}")
    print("ratios (x faster):")
    for key, value in ratios.items():
        print(f"  {key:<58}{value:>8.2f}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
