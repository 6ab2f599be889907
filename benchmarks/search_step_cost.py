"""What one search step costs, side by side: the weight step and the architecture step in its forms.

    .venv/bin/python benchmarks/search_step_cost.py [--dataset ml-100k] [--repeats 3] [-- run overrides]

On the dataset's supernet (its preset d, D, N, L, pruning; one torch thread) it times, in one process:
- a weight step on `search.batch` training targets, and the same step training every exit
  (`search.weight_exits=each`: L output projections instead of one);
- an architecture step on a VALIDATION batch of `search.arch_batch_size` users (the paper's form; each
  user's whole history goes through the supernet to score its last position; the final layer runs for that
  position alone), first in parts of `search.arch_part` positions (the default), then in one forward, then
  with the final layer run at every position (how it used to be done);
- an architecture step on the weight step's own training WINDOWS (`search.arch_batch=train`, scored at every
  target position);
- both architecture-step forms scoring every exit alone (`search.arch_exits=each`: L CEs, one per exit, in
  place of the CE of the exits' q-mixture), the validation batch in the default parts;
- the first `--prefix-targets` of those training targets expanded into one padded prefix each (how that
  option used to be computed; the same loss, see tests/nas/test_arch_step.py): the reference for the
  windows' saving, on a part of the batch because the whole batch in that form needs too much memory (on
  ML-100K, 1,024 prefixes of up to 200 items ran out of 24 GiB).
It prints seconds per step, the ratios to the weight step, the seconds per search epoch that each
architecture-step form adds at `search.arch_every`, the process's peak resident memory after each row (the rows
run in this order, so a row's peak is its own only where it exceeds every earlier row's: the parted step runs
before the one-forward step for that reason), and the two training-batch forms' seconds per target.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from dnsrec.compose import compose, parse_script_args
from dnsrec.config.run import RunConfig
from dnsrec.data import load_dataset
from dnsrec.evaluate import Evaluator
from dnsrec.nas.arch_step import ArchBatch, ArchBatches, arch_step
from dnsrec.nas.controllers import Controllers
from dnsrec.nas.search import candidate_flops, supernet_loss, weight_step
from dnsrec.nas.supernet import Supernet
from dnsrec.train.device import Placement
from dnsrec.train.engine import make_engine
from dnsrec.train.loop import TrainingSamples


def seconds(fn: Callable[[int], object], repeats: int) -> float:
    """Median wall time of fn(k) over `repeats` calls, after one warm-up call."""
    fn(0)
    times = []
    for k in range(1, repeats + 1):
        t0 = time.perf_counter()
        fn(k)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def prefixes(batch: ArchBatch, n: int) -> ArchBatch:
    """The first n scored targets of a window batch, each as its own prefix zero-padded after it (the old
    form)."""
    rows, cols = batch.rows[:n], batch.cols[:n]
    seqs = batch.seqs[rows].clone()
    seqs[torch.arange(seqs.shape[1])[None] > cols[:, None]] = 0
    return ArchBatch.last_positions(seqs, cols + 1, batch.targets[:n])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prefix-targets", type=int, default=128, help="targets timed in the one-prefix form")
    args, overrides = parse_script_args(ap, sys.argv[1:])  # after "--": the run's Hydra overrides
    torch.set_num_threads(1)

    cfg = RunConfig.from_mapping(compose("run", [f"dataset={args.dataset}", *overrides]))
    data = load_dataset(cfg.dataset.name, data_dir=cfg.data_dir, max_len=cfg.dataset.max_len)
    space = cfg.space(data)
    placement = Placement.resolve("cpu", "fp32")
    torch.manual_seed(0)
    supernet, controllers = Supernet(space), Controllers(space.n_layers, space.m)
    # One engine per weight-step loss over the same supernet (each with its own optimiser: only time is measured).
    engines = {
        exits: make_engine(
            supernet,
            supernet_loss(placement, exits=exits),
            cfg.train,
            placement,
            batch=cfg.search.batch,
            weight_decay=0.0,
        )
        for exits in ("mixture", "each")
    }
    for engine in engines.values():
        engine.set_training(True)
    samples = TrainingSamples(data, "window", placement.device)
    steps = samples.steps(cfg.search.batch, np.random.default_rng(0), cfg.train.bucket)
    valid = ArchBatches(Evaluator(data), cfg.search.arch_batch_size or cfg.search.batch, 0, placement.device)
    a_opt = torch.optim.Adam(controllers.parameters(), lr=cfg.search.arch_lr)
    flops = candidate_flops(space)

    def arch(batch: ArchBatch, part_positions: int = 0, exits: str = "mixture") -> None:
        lam = cfg.search.lam
        arch_step(
            supernet, controllers, a_opt, batch, 0, lam, flops, placement, part_positions=part_positions, exits=exits
        )

    def weights(k: int, exits: str = "mixture") -> None:
        weight_step(engines[exits], controllers, steps[k], samples.counts, samples.get, k)

    def every_exit(k: int) -> None:
        weights(k, "each")

    def window(k: int) -> ArchBatch:
        return ArchBatch.windows(*samples.get(steps[k]))

    n_prefix = min(args.prefix_targets, len(window(0)))

    def every_position(k: int) -> None:
        arch(dataclasses.replace(valid.get(k), one_per_row=False))

    def prefix_form(k: int) -> None:
        arch(prefixes(window(k), n_prefix))

    def peak_gib() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB

    part = cfg.search.arch_part

    def parted(k: int, exits: str = "mixture") -> None:
        arch(valid.get(k), part, exits)

    # (key the ratios below read, printed name, step, 0 weight step / 1 arch step / None a part of a batch only)
    forms: list[tuple[str, str, Callable[[int], object], int | None]] = [
        ("weight", "weight step", weights, 0),
        ("weight_each", "  the same, every exit trained (search.weight_exits=each)", every_exit, 0),
        ("parted", f"arch step, validation batch ({valid.batch} users), parts of {part} positions", parted, 1),
        ("one_forward", "  the same batch in one forward", lambda k: arch(valid.get(k)), 1),
        ("every_position", "  the same, final layer at every position (old form)", every_position, 1),
        ("windows", "arch step, training windows", lambda k: arch(window(k)), 1),
        ("prefix", f"arch step, one prefix per target (old form), {n_prefix} targets", prefix_form, None),
        ("parted_each", "arch step, validation batch in parts, every exit scored (search.arch_exits=each)",
         lambda k: parted(k, "each"), 1),
        ("windows_each", "arch step, training windows, every exit scored (search.arch_exits=each)",
         lambda k: arch(window(k), exits="each"), 1),
    ]  # fmt: skip
    secs: dict[str, float] = {}
    peak: dict[str, float] = {}  # GiB, the process's peak after the row
    for key, _, fn, _ in forms:
        secs[key] = seconds(fn, args.repeats)
        peak[key] = peak_gib()
    per_epoch = len(steps) / cfg.search.arch_every
    print(
        f"{data.name}: d {space.d}, D {space.inner}, N {space.max_len}, L {space.n_layers}, "
        f"{len(steps)} weight steps of {cfg.search.batch} targets per epoch, an arch step every {cfg.search.arch_every}"
    )
    print("step | s/step | x weight step | s per search epoch | peak RSS GiB so far")
    for key, name, _, per_step in forms:
        s = secs[key]
        epoch = "-" if per_step is None else f"{s * (per_epoch if per_step else len(steps)):.1f}"
        print(f"{name} | {s:.3f} | {s / secs['weight']:.2f} | {epoch} | {peak[key]:.2f}")
    print(
        f"validation batch in parts of {part} positions against one forward: "
        f"{secs['parted'] / secs['one_forward']:.2f}x the time, "
        f"peak RSS {peak['parted']:.2f} against {peak['one_forward']:.2f} GiB"
    )
    print(
        f"validation batch, final layer at the last position only: "
        f"{secs['every_position'] / secs['one_forward']:.2f}x faster"
    )
    print(f"weight step training every exit: {secs['weight_each'] / secs['weight']:.2f}x the time of the mixture's")
    print(
        f"arch step scoring every exit against the mixture's: validation batch "
        f"{secs['parted_each'] / secs['parted']:.2f}x, "
        f"training windows {secs['windows_each'] / secs['windows']:.2f}x the time"
    )
    per_target_old = secs["prefix"] / n_prefix
    per_target_new = secs["windows"] / statistics.mean(len(window(k)) for k in range(args.repeats + 1))
    print(
        f"seconds per target: training windows {per_target_new:.2e}, one prefix per target {per_target_old:.2e} "
        f"({per_target_old / per_target_new:.1f}x)"
    )


if __name__ == "__main__":
    main()
