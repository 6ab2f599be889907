"""Every architecture of the search space retrained alone: where does a search's choice stand among them?

    .venv/bin/python benchmarks/space_oracle.py --dataset ml-100k --seeds 0 1 2 --jobs 2 --out runs/bench/space \\
        [--searched RUN_DIR ...] [-- extra Hydra overrides applied to every run, e.g. gates.layers=1]

The space is the one of `search.per_layer_alpha=false` (the default): depth 1..L, one candidate width for every
layer, so L x m architectures, each with the config's L_d gates, as a search derives them. Each is retrained
from scratch with the retraining defaults (what `dnsrec retrain ARCH.json` does) once per seed, in a pool of
`--jobs` worker processes (one torch thread each), into OUT/d<depth>w<width>-seed<k>/; a run whose
result.json exists is reused, so a killed oracle continues where it stopped.

Printed, by FLOPs: each architecture's validation and test pop100 NDCG@10 and test full NDCG@10 (mean ± sd over
the seeds) and how many of the `--searched` runs (finished `dnsrec run` directories) chose it; then the space's
validation Pareto front (mean validation pop100 NDCG@10 up, FLOPs down) and each searched choice's rank on
validation among the L x m.

Why: standalone training is the ground truth that a supernet's ranking of its subnets approximates, measured
on the split a search may use. A search that works picks from this front and, as lambda grows, moves along
it toward fewer FLOPs. A front of one architecture means that validation asks for the cheapest model by
itself, so no lambda has anything to trade: every lambda should then choose it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch

from dnsrec.config import SELECTION_METRIC
from dnsrec.files import appending_log
from dnsrec.nas.architecture import Architecture
from dnsrec.reproduce.stats import mean_sd_text
from dnsrec.results.pareto import front
from dnsrec.run_result import RESULT_FILE, RunResult

FULL_METRIC = "full/ndcg@10"


def space_architectures(dataset: str, overrides: list[str]) -> list[Architecture]:
    """The shared-width space of the run config `dataset` + `overrides`, by depth then candidate."""
    from dnsrec.compose import compose
    from dnsrec.config.run import RunConfig
    from dnsrec.nas.derive import derive_architecture

    cfg = RunConfig.from_mapping(compose("run", [f"dataset={dataset}", *overrides]))
    space = cfg.space_for(n_items=1, max_len=1)  # the widths do not depend on the data
    m = len(space.hidden_widths)
    return [
        derive_architecture(space, [c] * space.n_layers, depth)
        for depth in range(1, space.n_layers + 1)
        for c in range(m)
    ]


def arch_name(arch: Architecture) -> str:
    """d<depth>w<width> for a shared-width architecture; per-layer widths joined by '-' otherwise."""
    widths = sorted(set(arch.hidden))
    width = str(widths[0]) if len(widths) == 1 else "-".join(map(str, arch.hidden))
    return f"d{arch.depth}w{width}"


def run_one(arch: dict, dataset: str, seed: int, out: Path, extra: list[str]) -> str:
    """Runs in a worker process: `dnsrec retrain` of `arch` (a dict); returns the run directory."""
    torch.set_num_threads(1)
    from dnsrec.compose import compose
    from dnsrec.config.run import RunConfig
    from dnsrec.pipeline import retrain_run

    architecture = Architecture.from_dict(arch)
    run_dir = out / f"{arch_name(architecture)}-seed{seed}"
    if (run_dir / RESULT_FILE).exists():
        return str(run_dir)
    cfg = RunConfig.from_mapping(compose("run", [f"dataset={dataset}", f"seed={seed}", "train.progress=false", *extra]))
    run_dir.mkdir(parents=True, exist_ok=True)

    log = appending_log(run_dir / "log.txt")
    retrain_run(architecture, cfg, run_dir, log)
    return str(run_dir)


@dataclass(frozen=True)
class Standalone:
    """One architecture's retrained runs, one per seed."""

    name: str
    flops: int
    valid: list[float]  # validation pop100 NDCG@10 per seed
    test: list[float]
    full: list[float]

    @property
    def valid_mean(self) -> float:
        return statistics.mean(self.valid)


def standalone(name: str, results: list[RunResult]) -> Standalone:
    flops = {r.flops["model"] for r in results}
    if len(flops) != 1:
        raise SystemExit(f"space_oracle: error: the runs of {name} record different FLOPs {sorted(flops)}")
    return Standalone(
        name,
        flops.pop(),
        [r.metrics["valid"][SELECTION_METRIC] for r in results],
        [r.metrics["test"][SELECTION_METRIC] for r in results],
        [r.metrics["test"][FULL_METRIC] for r in results],
    )


def validation_ranks(rows: list[Standalone]) -> dict[str, int]:
    """1 = the highest mean validation pop100 NDCG@10; tied means share the better rank."""
    means = sorted((r.valid_mean for r in rows), reverse=True)
    return {r.name: means.index(r.valid_mean) + 1 for r in rows}


def searched_choices(run_dirs: list[Path]) -> list[str]:
    """The architecture each searched run chose, by name."""
    names = []
    for run_dir in run_dirs:
        result = RunResult.read(run_dir / RESULT_FILE)
        if not result.architecture:
            raise SystemExit(f"space_oracle: error: {run_dir / RESULT_FILE} records no architecture (not a search)")
        names.append(arch_name(Architecture.from_dict(result.architecture, str(run_dir / RESULT_FILE))))
    return names


def report(rows: list[Standalone], chosen: list[str]) -> None:
    rows = sorted(rows, key=lambda r: (r.flops, r.name))
    ranks = validation_ranks(rows)
    print(
        "architecture | FLOPs (M) | valid pop100 NDCG@10 | valid rank | test pop100 NDCG@10 | test full NDCG@10 | "
        "searched runs that chose it"
    )
    for r in rows:
        print(
            f"{r.name} | {r.flops / 1e6:.2f} | {mean_sd_text(r.valid)} | {ranks[r.name]} | {mean_sd_text(r.test)} | "
            f"{mean_sd_text(r.full)} | {chosen.count(r.name)}"
        )
    on_front = front([(r.name, r.valid_mean, float(r.flops)) for r in rows])
    print(f"validation Pareto front (mean valid pop100 NDCG@10 up, FLOPs down), by FLOPs: {', '.join(on_front)}")
    best = max(rows, key=lambda r: r.valid_mean)
    for name in dict.fromkeys(chosen):
        if name not in ranks:
            print(f"searched choice {name}: not in the shared-width space (per-layer widths)")
            continue
        gap = next(r for r in rows if r.name == name).valid_mean - best.valid_mean
        print(
            f"searched choice {name} ({chosen.count(name)} of {len(chosen)} runs): validation rank {ranks[name]} of "
            f"{len(rows)}, {gap:+.4f} from the best ({best.name}), {'on' if name in on_front else 'off'} the front"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("runs/bench/space"))
    ap.add_argument("--searched", type=Path, nargs="*", default=[], help="finished `dnsrec run` directories")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for every run (after --)")
    args = ap.parse_args()

    chosen = searched_choices(args.searched)
    archs = space_architectures(args.dataset, args.overrides)
    # Deepest first: the long runs start first, so the pool's last minutes are not one long run alone.
    tasks = [(a.to_dict(), args.dataset, s, args.out, args.overrides) for s in args.seeds for a in reversed(archs)]
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for done in pool.map(run_one, *zip(*tasks, strict=True)):
            print(f"finished {done}", file=sys.stderr, flush=True)
    names = [arch_name(a) for a in archs]
    rows = [standalone(n, [RunResult.read(args.out / f"{n}-seed{s}" / RESULT_FILE) for s in args.seeds]) for n in names]
    print(f"{args.dataset}, seeds {args.seeds}, overrides {args.overrides or 'none'}: {len(rows)} architectures")
    report(rows, chosen)


if __name__ == "__main__":
    main()
