"""A 2-rank DeepSpeed ZeRO-2 retraining submitted as ONE SLURM job of 2 tasks (submitit, tasks_per_node=2)
on the real test cluster: each task calls the pipeline, the ranks find each other from the SLURM variables
(dnsrec.train.distributed), agree on every number, and rank 0 alone writes the run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import submitit
from slurm_support import SlurmCluster

OVERRIDES = [
    "dataset=gowalla-100",
    "dataset.d=16",
    "dataset.inner=32",
    "dropout=0.0",
    "search.layers=2",
    "retrain.max_epochs=2",
    "retrain.batch=1024",
    "train.progress=false",
    "train.engine=deepspeed",
    "train.zero_stage=2",
]
ARCH = {"d": 16, "inner": 32, "head_dim": 4, "hidden": [8, 16], "inner_widths": [16, 32], "gate_layers": 2}


def test_two_task_deepspeed_retrain_job(
    slurm_cluster: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if slurm_cluster.cpus < 2:
        pytest.skip(f"the cluster's node has {slurm_cluster.cpus} CPU; two tasks need two")
    arch_path, run_dir = tmp_path / "arch.json", tmp_path / "run"
    arch_path.write_text(json.dumps(ARCH))

    def task(arch_file: str, directory: str, overrides: list[str]) -> dict[str, Any]:
        # Runs in every task of the job (pickled by value): what a launcher's job function does.
        import os

        from dnsrec.compose import compose
        from dnsrec.config.run import RunConfig
        from dnsrec.nas.architecture import Architecture
        from dnsrec.pipeline import retrain_run
        from dnsrec.train import distributed

        cfg = RunConfig.from_mapping(compose("run", overrides))
        result = retrain_run(Architecture.read(Path(arch_file)), cfg, Path(directory), log=lambda _: None)
        return {
            "rank": distributed.rank(),
            "world_size": distributed.world_size(),
            "procid": os.environ["SLURM_PROCID"],
            "losses": [h["loss"] for h in result.history],
            "metrics": result.metrics,
        }

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # inherited by the job's tasks: one thread per rank
    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    executor.update_parameters(
        slurm_partition=slurm_cluster.partition, timeout_min=10, tasks_per_node=2, cpus_per_task=1, slurm_mem="3G"
    )
    job = executor.submit(task, str(arch_path), str(run_dir), OVERRIDES)
    ranks = job.results()  # one result per task

    assert [(r["rank"], r["world_size"], r["procid"]) for r in ranks] == [(0, 2, "0"), (1, 2, "1")]
    assert ranks[0]["losses"] == ranks[1]["losses"] and ranks[0]["metrics"] == ranks[1]["metrics"]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["stage"] == "retrain" and result["environment"]["ranks"] == "2"
    assert [h["loss"] for h in result["history"]] == ranks[0]["losses"]
    shards = sorted(p.name for p in (run_dir / "zero" / "fit" / "epoch-2").glob("*optim_states.pt"))
    assert len(shards) == 2, shards  # one ZeRO-2 optimizer partition per rank
    assert slurm_cluster.wait_states(job.job_id)[job.job_id] == "COMPLETED"

    # the caller records it like any run (here: as `dnsrec results ingest` does for a job run elsewhere)
    from dnsrec.results import SlurmInfo, open_store

    store = open_store()
    try:
        row = store.get_run(store.ingest(run_dir, launcher="slurm", slurm=SlurmInfo(job.job_id)))
    finally:
        store.close()
    assert (row.status, row.stage, row.launcher, row.slurm_job_id) == ("COMPLETE", "retrain", "slurm", job.job_id)
    assert row.environment["ranks"] == "2" and row.metrics["test/pop100/ndcg@10"] == pytest.approx(
        result["metrics"]["test"]["pop100/ndcg@10"]
    )
