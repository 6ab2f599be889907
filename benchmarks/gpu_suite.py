"""The GPU suite for a short lease: speed and memory beside ../shared/STACK.md's H200 figures, then (in the
time left) the ML-1M DNS-Rec vs SASRec-LinRec comparison with one seed. One JSON on stdout (also --out).

    PYTHONPATH=. DNSREC_DATA_DIR=gpu_data python3 benchmarks/gpu_suite.py --out suite.json [--budget-minutes 7.5]
    .venv/bin/python benchmarks/gpu_suite.py --smoke --out smoke.json     # CPU, tiny sizes (a test runs it)

What it measures, in order, each through the project's own code (dnsrec.train.loop.fit, dnsrec.nas.search,
dnsrec.evaluate.Evaluator, benchmarks/dnsrec_vs_baselines.run_one), each beside the STACK.md reference and
as a ratio to it ([measured / low end, measured / high end] of the reference range):
1. `ml1m_train`: SASRec-LinRec of the paper's baseline shape (d = 128, D = 256, 2 layers, 8 heads) on ML-1M,
   bf16 and fp32, at the project's batch (2048 target positions per step) and at STACK.md's (256 windows per
   step): seconds per training epoch (the fastest epoch after the first, which carries CUDA warm-up), the
   first epoch, targets per second, peak GPU memory (reset before each);
2. `ml1m_eval`: seconds to evaluate one split (valid, test) under each protocol (pop100, full) and both at
   once, the median of 3 passes after a warm-up;
3. `ml1m_search_epoch`: DNS-Rec search epochs on ML-1M's supernet (preset sizes, search.batch 1024): seconds
   per epoch (weight and architecture steps plus the epoch's validation) and peak memory. STACK.md has no
   search figure: the reference is its plain training epoch of the un-pruned supernet shape;
4. `gowalla_train`, `gowalla_eval`: the same on synth-gowalla (synthetic SNAP check-ins at the paper's
   Gowalla size, dnsrec.data.synth, generated here: a benchmark input, never for accuracy), d = 64, D = 256,
   4 layers, 4 heads, N = 100;
5. `comparison`: DNS-Rec (search + retrain) vs SASRec-LinRec on ML-1M, seed 0, within what is left of
   --budget-minutes (search epochs and train.max_minutes sized to fit): test NDCG@10 under both protocols,
   FLOPs, parameters, inference seconds and the paired per-user difference with its bootstrap interval.
A section that fails is recorded under `errors` and the rest still runs. `--smoke` runs the same code on the
CPU in about a minute: gowalla-100 (real) stands in for ML-1M, a tiny synthetic set for Gowalla, tiny models,
one epoch each. On a CPU, memory is the process's peak resident set (not comparable with the references).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import resource
import statistics
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/: dnsrec_vs_baselines

from dnsrec.compose import compose
from dnsrec.config import ModelConfig, TrainConfig
from dnsrec.config.run import RunConfig
from dnsrec.data import get_preset, load_dataset
from dnsrec.data.formats import read_gowalla
from dnsrec.data.process import build_sequences
from dnsrec.data.sequences import SequenceData
from dnsrec.data.synth import SYNTH_NOTE, SYNTH_PRESETS, SynthSpec, generate, write_checkins
from dnsrec.evaluate import RANKS_FILE, Evaluator, paired_bootstrap, per_user_ndcg, read_ranks
from dnsrec.measure import environment
from dnsrec.nas.controllers import Controllers
from dnsrec.nas.search import search
from dnsrec.nas.supernet import Supernet
from dnsrec.pipeline import build_model
from dnsrec.run_result import RESULT_FILE, RunResult
from dnsrec.train.batches import build_windows
from dnsrec.train.device import Placement
from dnsrec.train.loop import fit, scorer_of

GIB = 2**30
# ../shared/STACK.md, "What a GPU can do with this workload" (plain PyTorch, H200, random data at these
# shapes, 256 windows per step, unchunked full-softmax CE): (low, high).
REFERENCES = {
    "ml1m_train_fp32": (0.35, 0.35),  # s/epoch, linear attention, fp32
    "ml1m_train_bf16": (0.26, 0.26),  # s/epoch, linear attention, bf16
    "ml1m_eval_split": (0.02, 0.06),  # s to score one split against all items and take the top 10
    "ml1m_peak_gib": (3.0, 6.0),
    "ml1m_unpruned_train": (0.24, 0.50),  # s/epoch of the un-pruned supernet shape (no search figure exists)
    "ml1m_unpruned_peak_gib": (3.3, 5.2),
    "gowalla_train": (5.7, 7.3),  # s/epoch at the paper's Gowalla size, d = 64, 4 layers
    "gowalla_eval_split": (0.22, 0.49),
    "gowalla_peak_gib": (55.0, 64.0),  # unchunked logits; the paper's Gowalla model ran in 5.5 GB
}
SMOKE_SYNTH = SynthSpec(users=60, items=150, interactions=2_500, seed=0)
TINY_SASREC = ModelConfig(d=16, inner=16, layers=1, heads=2)
TINY_SEARCH = ["dataset.d=16", "dataset.inner=32", "search.layers=2", "search.batch=512"]


def log(line: str) -> None:
    print(f"[gpu_suite {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def versus(value: float, key: str, unit: str) -> dict[str, Any]:
    low, high = REFERENCES[key]
    return {"value": value, "unit": unit, "reference": [low, high], "ratio": [value / low, value / high]}


def sync(placement: Placement) -> None:
    if placement.device.type == "cuda":
        torch.cuda.synchronize(placement.device)


def reset_peak(placement: Placement) -> None:
    if placement.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(placement.device)


def peak_gib(placement: Placement) -> float:
    if placement.device.type == "cuda":
        return torch.cuda.max_memory_allocated(placement.device) / GIB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # Linux: KiB; the process's peak


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.smoke: bool = args.smoke
        self.device: str = "cpu" if args.smoke else args.device
        self.t0 = time.perf_counter()
        self.work: Path = args.work
        self.out: dict[str, Any] = {
            "suite": "benchmarks/gpu_suite.py",
            "smoke": self.smoke,
            "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "budget_minutes": args.budget_minutes,
            "environment": environment(Placement.resolve(self.device, "fp32")),
            "references": "../shared/STACK.md (H200, plain PyTorch, random data, 256 windows per step)",
            "errors": {},
        }

    def left(self) -> float:
        return 60 * self.args.budget_minutes - (time.perf_counter() - self.t0)

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        log(f"{name} ...")
        t = time.perf_counter()
        try:
            yield
        except Exception as e:  # one section's failure (e.g. out of memory) must not lose the others
            self.out["errors"][name] = f"{type(e).__name__}: {e}\n" + "".join(traceback.format_exc(limit=-4))
            log(f"{name} FAILED: {type(e).__name__}: {e}")
            if self.device == "cuda":
                torch.cuda.empty_cache()
        log(f"{name} done in {time.perf_counter() - t:.1f}s")

    def torch_device(self) -> torch.device:
        return Placement.resolve(self.device).device

    @staticmethod
    def windows_batch(data: SequenceData) -> int:
        """Target positions in 256 training windows on average: STACK.md's step, in the project's units."""
        windows = build_windows(data, overlap=TrainConfig().window_overlap)  # the overlap `train` trains with
        return round(256 * int((windows.targets > 0).sum()) / len(windows.targets))

    # ------------------------------------------------------------------ data

    def ml1m(self) -> SequenceData:
        return load_dataset("gowalla-100" if self.smoke else "ml-1m")

    def gowalla(self) -> SequenceData:
        """synth-gowalla generated, written as SNAP lines and read back through the project's loader."""
        spec = SMOKE_SYNTH if self.smoke else SYNTH_PRESETS["synth-gowalla"]
        preset = get_preset("synth-gowalla")
        t = time.perf_counter()
        path = write_checkins(generate(spec), self.work / "synth" / "synth-gowalla.checkins.txt.gz")
        generated = time.perf_counter() - t
        data = build_sequences(
            read_gowalla(path), None, name="synth-gowalla", max_len=preset.max_len, filtering=preset.filtering
        )
        self.out["synth_gowalla_data"] = {
            "users": data.n_users,
            "items": data.n_items,
            "interactions": data.n_interactions,
            "generate_and_write_s": generated,
            "read_and_process_s": time.perf_counter() - t - generated,
            "note": SYNTH_NOTE,
        }
        return data

    # ------------------------------------------------------------------ measurements

    def train(
        self,
        data: SequenceData,
        model: ModelConfig,
        precision: str,
        batch: int,
        evaluator: Evaluator,
        ref: str,
        max_epochs: int | None = None,
    ) -> tuple[dict[str, Any], torch.nn.Module]:
        """`fit` for `--epochs` epochs (no early stop): per-epoch seconds, throughput and peak memory."""
        placement = Placement.resolve(self.device, precision)
        reset_peak(placement)
        torch.manual_seed(0)
        net = build_model(model, data)
        epochs = 1 if self.smoke else min(self.args.epochs, max_epochs or self.args.epochs)
        cfg = TrainConfig(
            lr=1e-3,
            batch=batch,
            max_epochs=epochs,
            patience=epochs,
            progress=False,
            device=self.device,
            precision=precision,
        )
        result = fit(net, data, evaluator, cfg, run_dir=None, log=log)
        seconds = [h.train_seconds for h in result.history]
        steady = min(seconds[1:]) if len(seconds) > 1 else seconds[0]
        row = {
            "precision": "bf16" if placement.bf16 else "fp32",
            "batch_targets": batch,
            "s_per_epoch": versus(steady, ref, "s/epoch (fastest after the first)"),
            "epoch_seconds": seconds,
            "targets_per_s": max(h.targets_per_second for h in result.history),
            "eval_s_per_epoch": [h.eval_seconds for h in result.history],
            "valid_pop100_ndcg@10": result.best_valid["pop100/ndcg@10"],
            "peak_gib": peak_gib(placement),
        }
        log(f"  {row['precision']} batch {batch}: {steady:.2f} s/epoch, peak {row['peak_gib']:.2f} GiB")
        return row, net

    def evaluation(
        self, net: torch.nn.Module, evaluator: Evaluator, precision: str, ref: str, repeats: int = 3
    ) -> dict[str, Any]:
        """Seconds per split and protocol (median of `repeats` passes after a warm-up pass)."""
        placement = Placement.resolve(self.device, precision)
        score = scorer_of(net, placement)  # type: ignore[arg-type]
        out: dict[str, Any] = {}
        for split in ("valid", "test"):
            out[split] = {}
            for name, protocols in (("pop100", ("pop100",)), ("full", ("full",)), ("both", ("pop100", "full"))):
                times = []
                for _ in range(repeats + 1):
                    sync(placement)
                    t = time.perf_counter()
                    evaluator.ranks(score, split, protocols)  # type: ignore[arg-type]
                    sync(placement)
                    times.append(time.perf_counter() - t)
                out[split][name] = versus(statistics.median(times[1:]), ref, "s per split")
        return out

    def run(self) -> dict[str, Any]:
        precisions = ("bf16", "fp32")
        model = TINY_SASREC if self.smoke else ModelConfig(d=128, inner=256, layers=2, heads=8)
        state: dict[str, Any] = {}  # what later sections need from earlier ones
        with self.section("ml1m_train"):
            data = state["ml1m"] = self.ml1m()
            evaluator = state["ml1m_evaluator"] = Evaluator(data, batch_size=256, device=self.torch_device())
            self.out["ml1m_train"] = rows = {
                "dataset": data.name,
                "users": data.n_users,
                "items": data.n_items,
                "note": "the references are at 256 windows per step (batch256windows); batch2048 is the "
                "project's default (docs/method.md), with about 8x the steps per epoch",
            }
            for batch, label in ((2048, "batch2048"), (self.windows_batch(data), "batch256windows")):
                for precision in precisions:
                    row, trained = self.train(data, model, precision, batch, evaluator, f"ml1m_train_{precision}")
                    row["peak_gib"] = versus(row["peak_gib"], "ml1m_peak_gib", "GiB")
                    rows[f"{label}_{precision}"] = row
                    if label == "batch2048" and precision == "bf16":
                        state["ml1m_net"] = trained
        with self.section("ml1m_eval"):
            net, evaluator = state["ml1m_net"], state["ml1m_evaluator"]
            self.out["ml1m_eval"] = {p: self.evaluation(net, evaluator, p, "ml1m_eval_split") for p in precisions}
        with self.section("ml1m_search_epoch"):
            self.out["ml1m_search_epoch"] = self.search_epochs(state["ml1m"])
        with self.section("gowalla_train"):
            data = state["gowalla"] = self.gowalla()
            evaluator = state["gowalla_evaluator"] = Evaluator(data, batch_size=256, device=self.torch_device())
            gowalla_model = TINY_SASREC if self.smoke else ModelConfig(d=64, inner=256, layers=4, heads=4)
            self.out["gowalla_train"] = rows = {"dataset": data.name, "model": dataclasses.asdict(gowalla_model)}
            for batch, label in ((2048, "batch2048"), (self.windows_batch(data), "batch256windows")):
                row, trained = self.train(data, gowalla_model, "bf16", batch, evaluator, "gowalla_train", max_epochs=2)
                row["peak_gib"] = versus(row["peak_gib"], "gowalla_peak_gib", "GiB")
                rows[f"{label}_bf16"] = row
                if label == "batch2048":
                    state["gowalla_net"] = trained
        with self.section("gowalla_eval"):
            net, evaluator = state["gowalla_net"], state["gowalla_evaluator"]
            self.out["gowalla_eval"] = {"bf16": self.evaluation(net, evaluator, "bf16", "gowalla_eval_split")}
        with self.section("comparison"):
            self.out["comparison"] = self.comparison()
        self.out["seconds_total"] = time.perf_counter() - self.t0
        return self.out

    def search_epochs(self, data: SequenceData) -> dict[str, Any]:
        epochs = 1 if self.smoke else 2
        overrides = ["dataset=gowalla-100" if self.smoke else "dataset=ml-1m", f"search.epochs={epochs}"]
        overrides += ["train.progress=false", f"train.device={self.device}"] + (TINY_SEARCH if self.smoke else [])
        cfg = RunConfig.from_mapping(compose("run", overrides))
        space = cfg.space(data)
        placement = Placement.resolve(self.device, cfg.train.precision)
        reset_peak(placement)
        torch.manual_seed(cfg.train.seed)
        supernet = Supernet(space)
        controllers = Controllers(space.n_layers, space.m, cfg.search.per_layer_alpha, cfg.search.relax)
        evaluator = Evaluator(data, batch_size=cfg.train.eval_batch, device=placement.device)
        found = search(supernet, controllers, data, evaluator, cfg.search, cfg.train, run_dir=None, log=log)
        seconds = [float(e["seconds"]) for e in found.trajectory]
        steady = min(seconds[1:]) if len(seconds) > 1 else seconds[0]
        return {
            "dataset": data.name,
            "precision": "bf16" if placement.bf16 else "fp32",
            "search_batch": cfg.search.batch,
            "s_per_epoch": versus(steady, "ml1m_unpruned_train", "s/epoch (fastest after the first)"),
            "epoch_seconds": seconds,
            "steps": found.steps,
            "peak_gib": versus(peak_gib(placement), "ml1m_unpruned_peak_gib", "GiB"),
            "reference_note": "STACK.md has no search figure: the reference is a plain training epoch of the "
            "un-pruned supernet shape; a search epoch also takes architecture steps and validates",
        }

    def comparison(self) -> dict[str, Any]:
        """ML-1M DNS-Rec vs SASRec-LinRec, seed 0, through dnsrec_vs_baselines.run_one, within the budget."""
        from dnsrec_vs_baselines import run_one

        dataset = "gowalla-100" if self.smoke else "ml-1m"
        left = self.left() - 45  # the final evaluations, inference timing and the JSON
        if self.smoke:
            extra = [*TINY_SEARCH, "search.epochs=1", "retrain.max_epochs=1"]
        else:
            if left < 90:
                return {"skipped": f"{max(left, 0):.0f} s of --budget-minutes left; needs 90"}
            search_epoch = self.out.get("ml1m_search_epoch", {}).get("s_per_epoch", {}).get("value", 30.0)
            epochs = int(max(1, min(10, 0.35 * left // search_epoch)))
            minutes = 0.28 * left / 60
            extra = [f"search.epochs={epochs}", f"train.max_minutes={minutes:.2f}"]
        out = self.work / "comparison"
        t = time.perf_counter()
        old_threads = torch.get_num_threads()
        try:
            for model in ("sasrec", "dnsrec"):
                run_one(model, dataset, 0, out, [*extra, f"train.device={self.device}"])
        finally:
            torch.set_num_threads(old_threads)  # run_one sets 1 thread for its pool workers
        results = {m: RunResult.read(out / f"{m}-seed0" / RESULT_FILE) for m in ("dnsrec", "sasrec")}
        row: dict[str, Any] = {"dataset": dataset, "seed": 0, "overrides": extra, "seconds": time.perf_counter() - t}
        for m, r in results.items():
            row[m] = {
                "test_pop100_ndcg@10": r.metrics["test"]["pop100/ndcg@10"],
                "test_full_ndcg@10": r.metrics["test"]["full/ndcg@10"],
                "valid_pop100_ndcg@10": r.metrics["valid"]["pop100/ndcg@10"],
                "flops": r.flops["model"],
                "params": r.n_params,
                "inference_s": r.seconds["inference"],
                "epochs": r.epochs,
                "stopped": r.stopped,
                "search_s": r.seconds.get("search", 0.0),
                "retrain_s": r.seconds["retrain"],
                "architecture": r.architecture,
            }
        dns, sas = results["dnsrec"], results["sasrec"]
        row["dnsrec_over_sasrec"] = {
            "flops": dns.flops["model"] / sas.flops["model"],
            "params": dns.n_params / sas.n_params,
            "inference_s": dns.seconds["inference"] / sas.seconds["inference"],
        }
        ranks = {m: read_ranks(out / f"{m}-seed0" / RANKS_FILE) for m in ("dnsrec", "sasrec")}
        for protocol in ("pop100", "full"):
            diff = per_user_ndcg(ranks["dnsrec"][f"test/{protocol}"], 10) - per_user_ndcg(
                ranks["sasrec"][f"test/{protocol}"], 10
            )
            mean, low, high = paired_bootstrap(diff)
            row[f"paired_{protocol}_ndcg@10_dnsrec_minus_sasrec"] = {"mean": mean, "ci95": [low, high]}
        row["stopped_by_budget"] = [m for m, r in results.items() if r.stopped == "time_budget"]
        return row


def numbers(x: Any, where: str = "") -> Iterator[tuple[str, float]]:
    """Every number in a JSON-like value, with its path (the smoke test checks they are all finite)."""
    if isinstance(x, dict):
        for k, v in x.items():
            yield from numbers(v, f"{where}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from numbers(v, f"{where}[{i}]")
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        yield where, float(x)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="also write the JSON to this file")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny sizes, one epoch each (the test runs this)")
    ap.add_argument(
        "--budget-minutes", type=float, default=7.5, help="wall clock from start to JSON (default 7.5: under 8 min)"
    )
    ap.add_argument("--epochs", type=int, default=3, help="training epochs per timing (default 3; smoke 1)")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cpu: only to try the full sizes")
    ap.add_argument("--work", type=Path, help="run directories and the synthetic file (default runs/gpu_suite/TIME)")
    args = ap.parse_args(argv)
    if args.epochs < 1 or args.budget_minutes <= 0:
        ap.error("--epochs must be >= 1 and --budget-minutes > 0")
    if not args.smoke and args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_suite.py: no CUDA device here; --smoke runs the suite on the CPU at tiny sizes", file=sys.stderr)
        return 2
    os.environ.setdefault("DNSREC_OFFLINE", "1")  # GPU nodes often have no network: missing data fails at once
    args.work = args.work or Path("runs/gpu_suite") / time.strftime("%Y%m%d-%H%M%S")
    args.work.mkdir(parents=True, exist_ok=True)
    np.seterr(all="ignore")
    out = Suite(args).run()
    bad = [path for path, value in numbers(out) if not math.isfinite(value)]
    if bad:
        out["errors"]["non_finite"] = ", ".join(bad)
    text = json.dumps(out, indent=2, default=str)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
