"""Window vs per-prefix training speed, and evaluation seconds per protocol, on ML-1M — side by side in one run.

The per-prefix formulation is timed two ways: as `train.mode=prefix` computes it (stride-1 windows, every
target with the same context as its own sample; dnsrec.train.batches) and materialised one sample per prefix
as the reference library does (the form `train.mode=prefix` ran before).

    .venv/bin/python benchmarks/training_speed.py [--dataset ml-1m] [--steps 20] [--prefix-steps 2]

Seconds per epoch are extrapolated from the mean of timed training steps spread evenly over the epoch's
shuffled steps (after one warm-up step) to the epoch's number of steps; both formulations use the same
model, batch (2048 target positions) and
device. Evaluation times one full pass of validation + test users (model scoring included).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dnsrec.data import load_dataset
from dnsrec.data.sequences import SequenceData
from dnsrec.evaluate import Evaluator
from dnsrec.models import SASRec, SASRecConfig
from dnsrec.train.batches import pack_batches, prefix_batch, prefix_samples
from dnsrec.train.device import Placement
from dnsrec.train.loop import TrainingSamples, scorer_of, train_step


class OneSamplePerPrefix:
    """The reference per-prefix samples (one padded sample per target), with TrainingSamples' steps/get."""

    def __init__(self, data: SequenceData) -> None:
        self.data, self.pairs = data, prefix_samples(data)
        self.n_targets = len(self.pairs)

    def steps(self, batch: int, rng: np.random.Generator, bucket: bool = False) -> list[np.ndarray]:
        return pack_batches(np.ones(self.n_targets, dtype=np.int64), batch, rng)

    def get(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        w = prefix_batch(self.data, self.pairs[idx])
        width = int((w.inputs > 0).sum(axis=1).max())
        return torch.from_numpy(w.inputs[:, :width]), torch.from_numpy(w.targets[:, :width])


def seconds_per_step(
    model: SASRec, batches: list[tuple[torch.Tensor, torch.Tensor]], placement: Placement, last_only: bool = False
) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for inputs, targets in batches:
        if placement.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = train_step(
            model, inputs.to(placement.device), targets.to(placement.device), placement, last_only=last_only
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if placement.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.mean(times[1:]))  # the first step is a warm-up


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="ml-1m")
    ap.add_argument("--steps", type=int, default=20, help="timed window steps (spread over the epoch)")
    ap.add_argument(
        "--prefix-steps", type=int, default=2, help="timed steps of one sample per prefix (each ~1 min on a CPU)"
    )
    ap.add_argument("--batch", type=int, default=2048)
    ap.add_argument("--attention", default="linear", choices=["linear", "softmax"])
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    placement = Placement.resolve(args.device, "auto")
    data = load_dataset(args.dataset)
    torch.manual_seed(0)
    cfg = SASRecConfig(
        n_items=data.n_items,
        max_len=data.max_len,
        d=128,
        inner=256,
        n_layers=2,
        n_heads=8,
        dropout=0.2,
        attention=args.attention,
    )  # type: ignore[arg-type]
    model = SASRec(cfg).to(placement.device).train()
    print(
        f"{data.name}: {data.n_users:,} users, {data.n_items:,} items, N={data.max_len}; "
        f"{args.attention} attention on {placement.describe()}; batch {args.batch} targets"
    )

    # The epoch's steps exactly as training draws them; the timed steps are spread over the epoch so that
    # bucketed (length-sorted) steps of every length are represented.
    epochs = {}
    variants = (  # label, samples, bucketed, last layer at one-target windows' target only (train.mode=prefix)
        ("window, bucketed", "window", True, False),
        ("window, unbucketed", "window", False, False),
        ("per-prefix (stride 1)", "prefix", True, True),
        ("per-prefix (stride 1, full fwd)", "prefix", True, False),
        ("per-prefix (samples)", "samples", False, False),
    )
    for label, mode, bucket, last_only in variants:
        samples = OneSamplePerPrefix(data) if mode == "samples" else TrainingSamples(data, mode, torch.device("cpu"))
        # One seed per variant: the two stride-1 variants time the very same steps.
        steps = samples.steps(args.batch, np.random.default_rng(0), bucket)
        n = args.prefix_steps if mode == "samples" else args.steps
        picked = [steps[int(i)] for i in np.linspace(0, len(steps) - 1, n + 1)]
        per_step = seconds_per_step(model, [samples.get(i) for i in picked], placement, last_only)
        epochs[label] = per_step * len(steps)
        print(
            f"{label:<31}: {len(steps):>5} steps/epoch x {per_step:.3f} s = {epochs[label]:9.1f} s/epoch "
            f"({samples.n_targets:,} targets)"
        )
    window, prefix, samples_epoch = (
        epochs["window, bucketed"],
        epochs["per-prefix (stride 1)"],
        epochs["per-prefix (samples)"],
    )
    print(
        f"per-prefix epoch over the bucketed window epoch: {prefix / window:.1f}x as train.mode=prefix computes "
        f"it, {samples_epoch / window:.1f}x one sample per prefix; train.mode=prefix is {samples_epoch / prefix:.1f}x "
        f"faster than one sample per prefix, and its last-layer-at-the-target step "
        f"{epochs['per-prefix (stride 1, full fwd)'] / prefix:.2f}x faster than a full forward of every window"
    )

    model.eval()
    evaluator = Evaluator(data, device=placement.device)
    score = scorer_of(model, placement)
    for protocols in (("pop100",), ("full",), ("pop100", "full")):
        t0 = time.perf_counter()
        for split in ("valid", "test"):
            evaluator.evaluate(score, split, protocols=protocols)
        print(f"evaluation, valid + test, {'+'.join(protocols):<12}: {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
