"""One run: data -> model -> training -> evaluation -> RunResult + files on disk.

These are plain functions with typed inputs and outputs: the CLI calls them, tests call them, and
the sweep driver will call them. Hydra stays at the entry point (`cli.py`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import platform
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dnsrec.config import DatasetConfig, ModelConfig, TrainConfig, build
from dnsrec.data import load_dataset
from dnsrec.data.sequences import SequenceData
from dnsrec.errors import ConfigError
from dnsrec.evaluate import Evaluator
from dnsrec.models import SASRec, SASRecConfig
from dnsrec.result import RunResult
from dnsrec.train.device import Placement
from dnsrec.train.loop import fit, scorer_of

PROTOCOLS = ("pop100", "full")


@dataclass(frozen=True)
class TrainRunConfig:
    dataset: DatasetConfig
    model: ModelConfig
    train: TrainConfig
    data_dir: str | None = None

    @staticmethod
    def from_mapping(cfg: Mapping[str, Any]) -> TrainRunConfig:
        """From the composed Hydra config: groups `dataset`, `model`, `train` plus the top-level
        shortcuts `attention`, `lr`, `batch`, `seed` (DESIGN.md key names)."""
        known = {"dataset", "model", "train", "attention", "lr", "batch", "seed", "data_dir", "run_dir"}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ConfigError(f"unknown config key '{unknown[0]}'; known top-level keys: {', '.join(sorted(known))}")
        model = dict(cfg.get("model") or {})
        if "attention" in cfg:
            model["attention"] = cfg["attention"]
        train = dict(cfg.get("train") or {})
        for key in ("lr", "batch", "seed"):
            if key in cfg:
                train[key] = cfg[key]
        dataset = dict(cfg.get("dataset") or {})
        if "pruning" in dataset:
            dataset["pruning"] = tuple(dataset["pruning"])
        return TrainRunConfig(
            dataset=build(DatasetConfig, dataset, "dataset."),
            model=build(ModelConfig, model, "model."),
            train=build(TrainConfig, train, "train."),
            data_dir=cfg.get("data_dir"),
        )


def build_model(model: ModelConfig, data: SequenceData) -> SASRec:
    return SASRec(
        SASRecConfig(
            n_items=data.n_items,
            max_len=data.max_len,
            d=model.d,
            inner=model.inner,
            n_layers=model.layers,
            n_heads=model.heads,
            dropout=model.dropout,
            attention=model.attention,  # type: ignore[arg-type]
        )
    )


def environment(placement: Placement) -> dict[str, str]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "host": platform.node(),
        "device": placement.describe(),
        "git_commit": commit,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def train_run(cfg: TrainRunConfig, run_dir: Path, log: Callable[[str], None] = print) -> RunResult:
    """Train one fixed model to early stop; evaluate valid and test at the best epoch; write result.json."""
    started = dt.datetime.now(dt.UTC)
    data = load_dataset(cfg.dataset.name, data_dir=cfg.data_dir, max_len=cfg.dataset.max_len)
    log(
        f"{data.name}: {data.n_users:,} users, {data.n_items:,} items, "
        f"{data.n_interactions:,} interactions, N={data.max_len}"
    )
    placement = Placement.resolve(cfg.train.device, cfg.train.precision)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, data)
    evaluator = Evaluator(data, batch_size=cfg.train.eval_batch, device=placement.device)
    outcome = fit(model, data, evaluator, cfg.train, run_dir=run_dir, log=log)

    model.eval()
    score = scorer_of(model, placement)
    metrics, eval_seconds = {}, {}
    for split in ("valid", "test"):
        t0 = time.perf_counter()
        metrics[split] = evaluator.evaluate(score, split, protocols=PROTOCOLS)
        eval_seconds[split] = time.perf_counter() - t0
    result = RunResult(
        stage="train",
        dataset=data.name,
        config=_plain(dataclasses.asdict(cfg)),
        metrics=metrics,
        best_epoch=outcome.best_epoch,
        epochs=outcome.epochs,
        stopped=outcome.stopped,
        n_params=sum(p.numel() for p in model.parameters()),
        seconds_per_epoch=outcome.seconds_per_epoch,
        train_seconds=sum(h.train_seconds for h in outcome.history),
        eval_seconds=eval_seconds,
        history=[dataclasses.asdict(h) for h in outcome.history],
        environment=environment(placement),
        started_at=started.isoformat(timespec="seconds"),
        finished_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    result.write(run_dir)
    return result


def _plain(x: Any) -> Any:
    """Tuples -> lists so the stored config is plain JSON."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x
