"""Sweeps on the real single-node SLURM cluster: trials submitted as job arrays through submitit, job
states read from sacct, a cancelled job failed with its reason and retried, grids as one job array."""

from __future__ import annotations

import time
from pathlib import Path

from slurm_support import SlurmCluster
from sweep_support import dnsrec, env_for, start_dnsrec, states, study_trials, sweep_args, wait_for_line
from tiny_runs import TINY_RUN

from dnsrec.results import RunFilter, open_store

SLURM = ["launcher=slurm", "launcher.resources.cpus=1", "launcher.resources.mem_gb=1", "launcher.resources.time_min=10"]


def _runs(db: Path, sweep: str | None = None) -> list:
    store = open_store(f"sqlite:///{db}")
    try:
        return store.list_runs(RunFilter(sweep=sweep))
    finally:
        store.close()


def test_slurm_sweep_of_six_trials_as_job_arrays_two_in_flight(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    env = env_for(tmp_path, **slurm_cluster.env)
    args = ["sweep", *sweep_args("slurm6", 6, 2, *SLURM, f"launcher.partition={slurm_cluster.partition}")]
    done = dnsrec(args, tmp_path, env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert states(study_trials(tmp_path / "results.db", "slurm6")) == {"COMPLETE": 6}

    runs = _runs(tmp_path / "results.db", "slurm6")
    assert len(runs) == 6 and {r.status for r in runs} == {"COMPLETE"} and {r.launcher for r in runs} == {"slurm"}
    batches: dict[str, list[str]] = {}  # SLURM job (array) id -> the job ids of its trials
    for r in runs:
        if r.slurm_array_job_id:  # a batch of several trials: one array, one task each
            assert r.slurm_job_id == f"{r.slurm_array_job_id}_{r.slurm_array_task_id}"
        else:  # submitit submits a batch of one trial as a plain job
            assert r.slurm_job_id.isdigit()
        batches.setdefault(r.slurm_array_job_id or r.slurm_job_id, []).append(r.slurm_job_id)
    assert max(len(jobs) for jobs in batches.values()) == 2  # at least the first batch: two trials, one array
    for batch, jobs in batches.items():  # sacct knows every job and array task, all COMPLETED
        assert slurm_cluster.wait_states(batch, n=len(jobs)) == dict.fromkeys(jobs, "COMPLETED")

    listed = dnsrec(["results", "list", "--sweep", "slurm6"], tmp_path, env)
    assert listed.returncode == 0 and len(listed.stdout.strip().splitlines()) == 7


def test_a_scancelled_job_fails_its_trial_with_the_reason_and_is_retried(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    env = env_for(tmp_path, **slurm_cluster.env)
    # Long enough to outlive scancel's grace (srun waits up to 7 s while submitit ignores the SIGTERM): a
    # tiny trial could otherwise write its whole result in that window and rightly be recorded COMPLETE.
    longer = ["search.epochs=6", "retrain.max_epochs=40", "retrain.patience=40"]
    args = ["sweep", *sweep_args("scancel", 2, 2, *SLURM, "sweep.poll_seconds=1", *longer)]
    proc = start_dnsrec(args, tmp_path, env)
    seen: list[str] = []
    job_id = wait_for_line(proc, r"trial 0 submitted as job (\S+):", seen).group(1)
    deadline = time.monotonic() + 120
    while slurm_cluster.run("squeue", "-h", "-j", job_id, "-o", "%T").stdout.strip() != "RUNNING":
        assert time.monotonic() < deadline, "".join(seen)
        time.sleep(0.5)
    slurm_cluster.run("scancel", job_id)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, "".join(seen) + out

    trials = study_trials(tmp_path / "results.db", "scancel")
    assert states(trials) == {"COMPLETE": 2, "FAIL": 1}
    failed = next(t for t in trials if t.state.name == "FAIL")
    assert f"SLURM job {job_id} ended CANCELLED" in failed.user_attrs["fail_reason"]
    retry = next(t for t in trials if t.user_attrs.get("retry_of") == failed.number)
    assert retry.state.name == "COMPLETE" and retry.params == failed.params
    assert slurm_cluster.sacct_states(job_id.split("_")[0]).get(job_id, "").startswith("CANCELLED")


def test_a_gpu_request_the_cluster_cannot_satisfy_is_refused_before_anything_is_written(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    env = env_for(tmp_path, **slurm_cluster.env)
    too_many = slurm_cluster.gpus + 2
    args = ["sweep", *sweep_args("gpus", 2, 2, *SLURM, f"launcher.resources.gpus={too_many}")]
    done = dnsrec(args, tmp_path, env)
    assert done.returncode == 2 and "launcher=slurm refuses the trial's request" in done.stderr, done.stderr
    assert f"--gpus-per-node={too_many}" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "results.db").exists()


def test_a_multirun_grid_is_one_job_array_and_every_point_is_recorded(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    env = env_for(tmp_path, **slurm_cluster.env)
    args = [
        "run", "-m", *TINY_RUN, "gates.layers=0,2", "train.progress=false", "hydra/launcher=submitit_slurm",
        f"hydra.launcher.partition={slurm_cluster.partition}", "hydra.launcher.timeout_min=10",
        "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
    ]  # fmt: skip
    done = dnsrec(args, tmp_path, env, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = _runs(tmp_path / "results.db")
    assert sorted(r.gate_layers for r in runs) == [0, 2] and {r.status for r in runs} == {"COMPLETE"}
    assert len({r.slurm_array_job_id for r in runs}) == 1 and {r.slurm_array_task_id for r in runs} == {0, 1}
    array = runs[0].slurm_array_job_id
    assert slurm_cluster.wait_states(array, n=2) == {f"{array}_0": "COMPLETED", f"{array}_1": "COMPLETED"}


def test_a_preempted_trial_is_requeued_and_resumes_from_its_checkpoint(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """Preemption as SLURM does it (SIGTERM, then submitit's USR2), sent by hand once the search has written
    its first epoch checkpoint: the task requeues itself, the run resumes, and the trial completes as one."""
    env = env_for(tmp_path, **slurm_cluster.env)
    args = ["sweep", *sweep_args("preempt", 1, 1, *SLURM, "search.epochs=3", "sweep.poll_seconds=1")]
    proc = start_dnsrec(args, tmp_path, env)
    seen: list[str] = []
    job_id = wait_for_line(proc, r"trial 0 submitted as job (\S+):", seen).group(1)
    deadline = time.monotonic() + 180
    checkpoint = tmp_path / "runs" / "sweeps" / "preempt" / "trial-0000" / "search.pt"
    while not checkpoint.exists():
        assert time.monotonic() < deadline and proc.poll() is None, "".join(seen)
        time.sleep(0.2)
    slurm_cluster.run("scancel", "--signal=SIGTERM", job_id)
    slurm_cluster.run("scancel", "--signal=USR2", job_id)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, "".join(seen) + out

    trials = study_trials(tmp_path / "results.db", "preempt")
    assert states(trials) == {"COMPLETE": 1}
    history = slurm_cluster.run("sacct", "-D", "-X", "-n", "-P", "-j", job_id, "-o", "JobID,State").stdout.split()
    assert len(history) >= 2 and any("REQUEUED" in h or "PREEMPTED" in h for h in history), history
    log = next((tmp_path / "runs" / "sweeps" / "preempt" / "jobs").glob(f"{job_id}/*_log.out")).read_text()
    assert "resum" in log.lower(), log[-2000:]
