"""Two processes (gloo) against one: DeepSpeed ZeRO-2 steps via torchrun, a whole DNS-Rec run (search +
retrain) as the two tasks of a SLURM job would start it, and the CLI under torchrun."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tiny_runs import TINY_TRAIN
from train_support import TWO_RANK_RUN, load_worker, rank_env, slurm_tasks, torchrun

RUN = [*TWO_RANK_RUN, "search.epochs=2", "search.arch_every=2"]
TRAIN = TINY_TRAIN


def max_diff(a: list[float] | list[list[float]], b: list[float] | list[list[float]]) -> float:
    return float(np.max(np.abs(np.subtract(a, b))))


def test_zero2_on_two_ranks_matches_one_torch_process(tmp_path: Path) -> None:
    """24 steps of a real SASRec (LinRec, 2 layers) on gowalla-100; two micro-batches per rank."""
    ranks = torchrun(
        2, "steps", tmp_path, "n_steps=24", 'engine="deepspeed"', "zero_stage=2", "grad_accum=2", timeout=600
    )
    reference = load_worker().steps(n_steps=24)
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    shards = [r["shard_numel"] for r in ranks]
    diffs = [max_diff(r["losses"], reference["losses"]) for r in ranks]
    print(f"ZeRO-2, 2 ranks vs torch: max loss difference {max(diffs):.2e}; shards {shards} of {reference['n_params']}")
    for r in ranks:
        assert max_diff(r["losses"], reference["losses"]) < 1e-5
        # Real sharding: each rank's fp32 optimizer partition holds half of the parameters.
        assert r["shard_numel"] <= reference["n_params"] // 2 + 64
    assert sum(r["shard_numel"] for r in ranks) >= reference["n_params"]
    assert ranks[0]["weights_sum"] == ranks[1]["weights_sum"]  # the ranks hold the same weights
    assert ranks[0]["weights_sum"] == pytest.approx(reference["weights_sum"], rel=1e-6)


def test_dnsrec_run_on_two_slurm_tasks_matches_one_process(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    engine = ["train.engine=deepspeed", "train.zero_stage=2"]
    ranks = slurm_tasks(2, "run", tmp_path / "ranks", str(run_dir), *RUN, *engine, timeout=900)
    reference = load_worker().run(str(tmp_path / "single"), *RUN)
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)

    zero, one = ranks
    # Identical on every rank: alpha/beta after every epoch, the decision, the losses.
    assert zero["alpha"] == one["alpha"] and zero["beta"] == one["beta"]
    assert zero["architecture"] == one["architecture"]
    assert zero["search_loss"] == one["search_loss"] and zero["retrain_loss"] == one["retrain_loss"]
    # ... and what one process with the torch engine computes.
    assert zero["architecture"] == reference["architecture"]
    print(
        f"DNS-Rec on 2 ranks vs 1 process: alpha {max_diff(zero['alpha'], reference['alpha']):.1e}, "
        f"beta {max_diff(zero['beta'], reference['beta']):.1e}"
    )
    assert max_diff(zero["alpha"], reference["alpha"]) < 1e-5
    assert max_diff(zero["beta"], reference["beta"]) < 1e-5
    assert max_diff(zero["search_loss"], reference["search_loss"]) < 1e-5
    assert max_diff(zero["retrain_loss"], reference["retrain_loss"]) < 1e-5

    # Rank 0 wrote the run directory: result, architecture, resume files and each rank's ZeRO shard.
    result = json.loads((run_dir / "result.json").read_text())
    assert result["architecture"] == zero["architecture"] and result["environment"]["ranks"] == "2"
    assert result["config"]["train"]["engine"] == "deepspeed"
    assert {"search.pt", "last.pt", "best.pt", "architecture.json"} <= {p.name for p in run_dir.iterdir()}
    for stage in ("search", "fit"):
        tags = [p.name for p in (run_dir / "zero" / stage).iterdir() if p.is_dir()]
        assert tags == ["epoch-2"], tags  # only the checkpoint the resume file points at is kept
        shards = list((run_dir / "zero" / stage / tags[0]).glob("*optim_states.pt"))
        assert len(shards) == 2


def test_cli_on_two_torchrun_ranks_records_once(tmp_path: Path) -> None:
    """`dnsrec train` started twice by torchrun (torch engine, gradients averaged by hand): one run
    directory, one report, one database record."""
    db = tmp_path / "results.db"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "dnsrec.cli"]
    args = ["train", *TRAIN, "train.max_epochs=1", f"run_dir={tmp_path / 'run'}", "--db", f"sqlite:///{db}"]
    proc = subprocess.run([*cmd, *args], env=rank_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("run directory:") == 1 and proc.stdout.count("recorded as run") == 1
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["environment"]["ranks"] == "2" and result["epochs"] == 1
    with sqlite3.connect(db) as con:
        assert con.execute("select count(*) from dnsrec_runs").fetchone()[0] == 1
