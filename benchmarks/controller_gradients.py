"""Why did the search choose this depth and width? The two forces on the controllers, side by side.

    .venv/bin/python benchmarks/controller_gradients.py RUN_DIR [--batches 8] [-- the run's overrides]

RUN_DIR is a `dnsrec run` directory with its search checkpoint (search.pt); the overrides after `--` are
the ones the run was started with (dataset, search.*, gates.*), so the supernet is rebuilt with the same
shape. At the decision epoch (its weights, alpha, beta and tau, as the run kept them) it computes, on
`--batches` validation batches of `--users` users (the run's seed), the gradient on alpha and beta of
the CE term and of the resource term L_RC of Eq. 13, and prints them per candidate and per exit depth.
The CE term is taken on validation batches (default), or with `--ce-batch train` on training batches as the
default search steps on them (the decision epoch's own architecture-step batches, dropout on as in the search),
so the two forms' pull can be compared on one run; with per-layer alpha the rows show alpha's
gradient summed over layers and the first layer's logits.
Descent moves a logit against its gradient, so the term with the larger magnitude decides which candidate
or depth grows; the last line gives the lambda at which lambda * |dL_RC/dbeta| equals |dCE/dbeta|.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from dnsrec.compose import compose, parse_script_args
from dnsrec.config.run import RunConfig
from dnsrec.data import load_dataset
from dnsrec.data.sequences import SequenceData
from dnsrec.errors import DNSRecError
from dnsrec.evaluate import Evaluator
from dnsrec.nas.arch_step import ArchBatch, ArchBatches, arch_ce
from dnsrec.nas.controllers import relax, resource_loss
from dnsrec.nas.search import candidate_flops, load_decision
from dnsrec.train.device import Placement
from dnsrec.train.epochs import epoch_batches
from dnsrec.train.loop import TrainingSamples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--batches", type=int, default=8, help="architecture batches to average over")
    ap.add_argument(
        "--users",
        type=int,
        default=128,
        help="validation users per batch (default 128; the run's search.batch of 1024 whole ML-100K histories "
        "with their graph kept for two gradients needed 22 GB and was killed for memory here)",
    )
    ap.add_argument(
        "--ce-batch",
        choices=["valid", "train"],
        default="valid",
        help="the batches of the CE term: validation users' last positions (default) or training windows",
    )
    args, overrides = parse_script_args(ap, sys.argv[1:])  # after "--": the run's Hydra overrides
    torch.set_num_threads(1)

    cfg = RunConfig.from_mapping(compose("run", overrides))
    data = load_dataset(cfg.dataset.name, data_dir=cfg.data_dir, max_len=cfg.dataset.max_len)
    space = cfg.space(data)
    supernet, at = load_decision(args.run_dir, space)

    alpha = torch.tensor(at["alpha"], requires_grad=True)
    beta = torch.tensor(at["beta"], requires_grad=True)
    p = relax(alpha, at["tau"], gumbel=False).expand(space.n_layers, -1)
    q = relax(beta, at["tau"], gumbel=False)
    placement = Placement.resolve("cpu", "fp32")
    flops = candidate_flops(space)
    batches = ce_batches(args.ce_batch, data, cfg, args.users, args.batches, placement, at["epoch"])
    if args.ce_batch == "train":
        supernet.train()  # dropout as in the search's training-batch architecture step
    ce_grads: list[tuple[torch.Tensor, torch.Tensor]] = []
    for batch in batches:
        ce = arch_ce(supernet, p, q, batch, placement)
        ga, gb = torch.autograd.grad(ce, [alpha, beta], retain_graph=True)
        ce_grads.append((ga.sum(dim=0), gb))
    rc = resource_loss(p, q, flops, at["l_t"], space.n_layers)
    rc_alpha, rc_beta = (g.detach() for g in torch.autograd.grad(rc, [alpha, beta]))

    print(
        f"{args.run_dir}: decision epoch {at['epoch']}, tau {at['tau']:.4f}, L_t {at['l_t']}, "
        f"lambda {cfg.search.lam}, {len(batches)} {args.ce_batch} batches of "
        f"{sum(len(b) for b in batches) // len(batches)} scored positions on average"
    )
    print("logit | value | dCE (mean ± sd over batches) | dL_RC | lambda * dL_RC")
    rows = [
        (f"alpha[width {w}]", at["alpha"][0][i], 0, i, rc_alpha.sum(dim=0)[i])
        for i, w in enumerate(space.hidden_widths)
    ]
    rows += [(f"beta[depth {j + 1}]", at["beta"][j], 1, j, rc_beta[j]) for j in range(space.n_layers)]
    for name, value, part, i, rc_g in rows:
        per_batch = [float(g[part][i]) for g in ce_grads]
        sd = statistics.stdev(per_batch) if len(per_batch) > 1 else 0.0
        print(
            f"{name} | {value:+.4f} | {statistics.mean(per_batch):+.5f} ± {sd:.5f} | {float(rc_g):+.5f} | "
            f"{cfg.search.lam * float(rc_g):+.5f}"
        )
    ce_beta = torch.stack([g[1] for g in ce_grads]).mean(dim=0)
    print(f"lambda at which |lambda * dL_RC/dbeta| = |dCE/dbeta|: {float(ce_beta.norm() / rc_beta.norm()):.3f}")


def ce_batches(
    kind: str, data: SequenceData, cfg: RunConfig, users: int, count: int, placement: Placement, epoch: int
) -> list[ArchBatch]:
    """`count` CE batches: validation users' last positions (`users` per batch), or the training batches the
    search's architecture steps took in `epoch` (its weight steps' batches in that epoch's order, every
    `search.arch_every`-th one by the global step count; the dropout masks are this script's own)."""
    if kind == "valid":
        valid = ArchBatches(Evaluator(data), users, cfg.train.seed, placement.device)
        return [valid.get(k) for k in range(count)]
    if epoch <= cfg.search.warmup_epochs:
        raise DNSRecError(
            f"the decision epoch {epoch} lies in the search's warm-up (search.warmup={cfg.search.warmup:g}): "
            "it took no architecture steps; use --ce-batch valid"
        )
    samples = TrainingSamples(data, "window", placement.device, cfg.train.window_overlap)

    def order(e: int) -> list[np.ndarray]:
        return epoch_batches(samples, cfg.search.batch, cfg.train.seed, e, cfg.train.bucket)

    before = sum(len(order(e)) for e in range(1, epoch))  # weight steps taken before the epoch
    every = cfg.search.arch_every
    taken = [idx for i, idx in enumerate(order(epoch)) if (before + i + 1) % every == 0]
    return [ArchBatch.windows(*samples.get(idx)) for idx in taken[:count]]


if __name__ == "__main__":
    try:
        main()
    except DNSRecError as e:  # a bad override or run directory: one line naming it, not a traceback
        sys.exit(f"controller_gradients: {e}")
