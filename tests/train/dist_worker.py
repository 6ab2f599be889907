"""One rank of a multi-process test run (started by torchrun or with SLURM-style variables), or the
single-process reference when imported. Writes what it saw to OUT/rank<r>.json.

    python -m torch.distributed.run --standalone --nproc_per_node 2 dist_worker.py steps OUT [key=value ...]
    python dist_worker.py run OUT [overrides ...]     (with SLURM_PROCID/SLURM_NTASKS/... set)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dnsrec.config import TrainConfig
from dnsrec.data import load_dataset
from dnsrec.models import SASRec, SASRecConfig
from dnsrec.train import distributed
from dnsrec.train.device import Placement
from dnsrec.train.engine import make_engine
from dnsrec.train.loop import TrainingSamples, window_loss

DATASET = "gowalla-100"


def steps(n_steps: int = 24, batch: int = 256, **train: Any) -> dict[str, Any]:
    """`n_steps` engine steps of a real SASRec (LinRec, dropout 0, d = 16) on gowalla-100 windows."""
    data = load_dataset(DATASET)
    placement = Placement.resolve("cpu", "fp32")
    torch.manual_seed(0)
    model = SASRec(
        SASRecConfig(n_items=data.n_items, max_len=data.max_len, d=16, inner=32, n_layers=2, n_heads=2, dropout=0.0)
    )
    cfg = TrainConfig(lr=1e-3, batch=batch, **train)
    engine = make_engine(model, window_loss(placement), cfg, placement, batch=batch, weight_decay=0.0)
    samples = TrainingSamples(data, "window", placement.device)
    losses: list[float] = []
    epoch = 0
    while len(losses) < n_steps:
        epoch += 1
        for idx in samples.steps(batch, np.random.default_rng([0, epoch])):
            losses.append(engine.train_step(idx, samples.counts, samples.get))
            if len(losses) == n_steps:
                break
    final = engine.state_dict()
    return {
        "rank": engine.rank,
        "world_size": engine.world_size,
        "losses": losses,
        "shard_numel": engine.optimizer_shard_numel(),
        "n_params": sum(p.numel() for p in model.parameters()),
        "weights_sum": float(sum(v.double().sum() for v in final.values())),
    }


def run(run_dir: str, *overrides: str) -> dict[str, Any]:
    """A whole DNS-Rec run (search + retrain) through the pipeline function a launcher calls."""
    from dnsrec.compose import compose
    from dnsrec.config.run import RunConfig
    from dnsrec.pipeline import dnsrec_run

    cfg = RunConfig.from_mapping(compose("run", list(overrides)))
    result = dnsrec_run(cfg, Path(run_dir), log=lambda _: None)
    assert result.search is not None
    return {
        "rank": distributed.rank(),
        "world_size": distributed.world_size(),
        "architecture": result.architecture,
        "alpha": [e["alpha"] for e in result.search["trajectory"]],
        "beta": [e["beta"] for e in result.search["trajectory"]],
        "search_loss": [e["loss"] for e in result.search["trajectory"]],
        "retrain_loss": [h["loss"] for h in result.history],
        "metrics": result.metrics,
    }


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: list[str]) -> None:
    task, out = argv[0], Path(argv[1])
    distributed.init_from_env("cpu")
    if task == "steps":
        found = steps(**{k: _value(v) for k, v in (a.split("=", 1) for a in argv[2:])})
    elif task == "run":
        found = run(*argv[2:])
    else:
        raise SystemExit(f"unknown task {task}")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{found['rank']}.json").write_text(json.dumps(found))


if __name__ == "__main__":
    main(sys.argv[1:])
