"""Which subnet did the supernet itself rate best when the search decided? Every (depth, width) one-hot subnet
of a finished search, scored on the validation split with the weights of the decision epoch.

    .venv/bin/python benchmarks/subnet_probe.py RUN_DIR [-- the run's overrides]

RUN_DIR is a `dnsrec run` directory with its search checkpoint (search.pt); the overrides after `--` are the
ones the run was started with (dataset, search.*, gates.*, retrain.*), so the supernet is rebuilt with the same
shape. Each row selects ONE width (the same in every layer, as the default shared alpha does) and ONE exit
depth, i.e. p and q one-hot, and evaluates the supernet under that selection: the subnet with the weights it
inherits, before any retraining (the retrained model can rank differently). FLOPs are the compact model's as
retraining would build it (`retrain.shape`, `retrain.gate_layers`). The controllers' p and q at the decision
say how much of the soft mixture each row held. The last lines name the best row overall and the best row at
no more FLOPs than the search's choice, so a reader sees whether the controllers picked what the supernet's
own validation scores favour.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from dnsrec.compose import compose, parse_script_args
from dnsrec.config.run import RunConfig
from dnsrec.data import load_dataset
from dnsrec.errors import DNSRecError
from dnsrec.evaluate import Evaluator
from dnsrec.nas.derive import compact_config, derive_architecture, retrained_architecture
from dnsrec.nas.flops import model_flops
from dnsrec.nas.search import load_decision

METRICS = ("pop100/ndcg@10", "full/ndcg@10")


class Subnet(NamedTuple):
    depth: int
    width: int  # candidate index
    flops: int  # the compact model's, as retrained
    pop100: float  # valid NDCG@10 with the inherited weights
    full: float


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", type=Path)
    args, overrides = parse_script_args(ap, sys.argv[1:])  # after "--": the run's Hydra overrides
    torch.set_num_threads(1)

    cfg = RunConfig.from_mapping(compose("run", overrides))
    data = load_dataset(cfg.dataset.name, data_dir=cfg.data_dir, max_len=cfg.dataset.max_len)
    space = cfg.space(data)
    supernet, at = load_decision(args.run_dir, space)
    evaluator = Evaluator(data)
    n_layers, m = space.n_layers, space.m
    chosen = (at["depth"], at["candidates"][0])
    if len(set(at["candidates"][: at["depth"]])) > 1:
        print("note: the decision has per-layer widths; the rows probe one shared width each")

    def flops(width: int, depth: int) -> int:
        arch = retrained_architecture(derive_architecture(space, [width] * n_layers, depth), cfg.retrain.gate_layers)
        return model_flops(
            compact_config(arch, space.n_items, space.max_len, cfg.retrain.shape, space.attention, space.dropout)
        ).total

    rows = []
    for depth in range(1, n_layers + 1):
        for width in range(m):
            p = torch.nn.functional.one_hot(torch.tensor(width), m).float().expand(n_layers, m)
            q = torch.nn.functional.one_hot(torch.tensor(depth - 1), n_layers).float()

            def score(seqs: Tensor, lengths: Tensor, p: Tensor = p, q: Tensor = q) -> Tensor:
                with torch.no_grad():
                    return supernet.score(seqs, lengths, p, q)

            metrics = evaluator.evaluate(score, "valid")
            rows.append(Subnet(depth, width, flops(width, depth), *(metrics[k] for k in METRICS)))

    print(
        f"{args.run_dir}: decision epoch {at['epoch']}, tau {at['tau']:.4f}, chosen depth {chosen[0]} width "
        f"{space.hidden_widths[chosen[1]]}; the search's own valid pop100 NDCG@10 there (the soft mixture's, or "
        "the argmax path's under search.relax=hard) "
        f"{at['valid'].get(METRICS[0], float('nan')):.4f}"
    )
    print("depth | width | inner | FLOPs (M) | valid pop100 NDCG@10 | valid full NDCG@10 | p[width] | q[depth] | mark")
    for r in sorted(rows, key=lambda r: (r.flops, r.depth)):
        mark = "<-" if (r.depth, r.width) == chosen else ""
        print(
            f"{r.depth} | {space.hidden_widths[r.width]} | {space.inner_widths[r.width]} | {r.flops / 1e6:.2f} | "
            f"{r.pop100:.4f} | {r.full:.4f} | {at['p'][0][r.width]:.3f} | {at['q'][r.depth - 1]:.3f} | {mark}"
        )
    choice = next(r for r in rows if (r.depth, r.width) == chosen)

    def name(r: Subnet) -> str:
        return f"depth {r.depth} width {space.hidden_widths[r.width]} ({r.flops / 1e6:.2f}M, {r.pop100:.4f})"

    def best(among: list[Subnet]) -> Subnet:
        return max(among, key=lambda r: r.pop100)

    print(f"best subnet: {name(best(rows))}")
    cheaper = best([r for r in rows if r.flops <= choice.flops])
    print(f"best subnet at <= the choice's FLOPs: {name(cheaper)}; the choice: {name(choice)}")


if __name__ == "__main__":
    try:
        main()
    except DNSRecError as e:  # a bad override or run directory: one line naming it, not a traceback
        sys.exit(f"subnet_probe: {e}")
