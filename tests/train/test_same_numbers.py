"""Refactoring guard: a seeded tiny fit and tiny searches give the numbers recorded before the epoch loop
of `fit` and `search` was shared (dnsrec.train.epochs, issue 12). Losses, validation metrics, alpha, beta,
tau, the decision and the final metrics must not move; timings are left out.

The recorded numbers are this repository's CPU fp32 run; on another machine or torch build the last bits
can differ, hence a tight relative tolerance instead of equality. To record them again (only when a
change of numbers is meant): `DNSREC_RECORD_NUMBERS=1 pytest tests/train/test_same_numbers.py`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from tiny_runs import TINY_RUN, TINY_TRAIN, assert_same_numbers

from dnsrec.compose import compose
from dnsrec.config.run import RunConfig, TrainRunConfig
from dnsrec.pipeline import dnsrec_run, train_run
from dnsrec.run_result import RunResult

RECORDED = Path(__file__).with_name("same_numbers.json")
QUIET = {"log": lambda _: None}
TIMINGS = {"seconds", "train_seconds", "eval_seconds", "targets_per_second"}

CASES: dict[str, tuple[str, list[str]]] = {
    "fit": ("train", [*TINY_TRAIN, "train.max_epochs=4", "train.patience=1"]),  # stops at max_epochs
    "fit_patience": ("train", [*TINY_TRAIN, "train.max_epochs=8", "train.patience=1", "lr=0.02"]),  # at patience
    # recorded when architecture steps took the training batch and beta moved from the first architecture
    # step by default: pinned to that form
    "search_train_batches": (
        "run",
        [
            *TINY_RUN,
            "search.depth_hold=0",
            "search.epochs=2",
            "search.arch_every=1",
            "search.arch_batch=train",
            "search.arch_batch_size=null",
            "retrain.max_epochs=2",
        ],
    ),
    "search_warmup_train_batches": (
        "run",
        [
            *TINY_RUN,
            "search.depth_hold=0",
            "search.epochs=3",
            "search.warmup=0.34",
            "search.arch_batch=train",
            "search.arch_every=2",
            "search.arch_lr_follows_tau=true",
            "retrain.max_epochs=1",
        ],
    ),
}


def numbers(result: RunResult) -> dict[str, Any]:
    """What a run computed, without how long it took."""

    def untimed(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in e.items() if k not in TIMINGS} for e in entries]

    out: dict[str, Any] = {
        "metrics": result.metrics,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs,
        "stopped": result.stopped,
        "history": untimed(result.history),
        # `method` is provenance (which search chose it), not a computed number; recorded ones predate it
        "architecture": None if result.architecture is None else _without(result.architecture, "method"),
    }
    if result.search is not None:
        out["search"] = {**result.search, "trajectory": untimed(result.search["trajectory"])}
    return out


def _without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


def run_case(name: str, run_dir: Path) -> dict[str, Any]:
    stage, overrides = CASES[name]
    if stage == "train":
        return numbers(train_run(TrainRunConfig.from_mapping(compose("train", overrides)), run_dir, **QUIET))
    return numbers(dnsrec_run(RunConfig.from_mapping(compose("run", overrides)), run_dir, **QUIET))


@pytest.mark.parametrize("name", sorted(CASES))
def test_tiny_runs_give_the_recorded_numbers(name: str, tmp_path: Path) -> None:
    got = json.loads(json.dumps(run_case(name, tmp_path / name)))  # as the recorded file gives them back
    if os.environ.get("DNSREC_RECORD_NUMBERS"):
        recorded = json.loads(RECORDED.read_text()) if RECORDED.exists() else {}
        RECORDED.write_text(json.dumps({**recorded, name: got}, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"recorded {name} in {RECORDED.name}")
    assert_same_numbers(got, json.loads(RECORDED.read_text())[name], rel=1e-5, where=name)
