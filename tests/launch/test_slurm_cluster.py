"""The single-node SLURM test cluster (slurm/cluster.sh) does what the launchers rely on: job arrays with a
throttle, accounting in sacct, refusal of impossible requests at submission, fake GPUs, cancellation,
submitit round trips, and the sbatch templates of slurm/templates/."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path

import pytest
import submitit
from slurm_support import REPO, SlurmCluster


@pytest.fixture(scope="module")
def finished_array(slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(array job id, output directory) of a finished 3-task array with at most 2 tasks at a time."""
    out = tmp_path_factory.mktemp("array")
    script = """\
        #!/bin/bash
        echo "start $(date +%s.%N)"
        echo "task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_JOB_ID"
        sleep 1
        echo "end $(date +%s.%N)"
    """
    job = slurm_cluster.sbatch("--array=0-2%2", "--output=%A_%a.out", script=textwrap.dedent(script), cwd=out)
    throttle = slurm_cluster.run("scontrol", "show", "job", job).stdout
    assert "ArrayTaskThrottle=2" in throttle
    slurm_cluster.wait_gone(job, timeout=60)
    return job, out


def test_array_tasks_all_run_at_most_two_at_a_time(finished_array: tuple[str, Path]) -> None:
    job, out = finished_array
    spans = []
    for task in range(3):
        lines = dict(line.split(" ", 1) for line in (out / f"{job}_{task}.out").read_text().splitlines())
        assert lines["task"] == f"{task} of {job}"
        spans.append((float(lines["start"]), float(lines["end"])))
    for start, _ in spans:  # the throttle: never three tasks running at one moment
        assert sum(s <= start < e for s, e in spans) <= 2


def test_sacct_shows_array_tasks_completed(slurm_cluster: SlurmCluster, finished_array: tuple[str, Path]) -> None:
    job, _ = finished_array
    states = slurm_cluster.wait_states(job, n=3)
    assert states == {f"{job}_{task}": "COMPLETED" for task in range(3)}


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ("cpus", "More processors requested than permitted"),
        ("memory", "Memory specification can not be satisfied"),
    ],
)
def test_impossible_request_is_refused_at_submission(slurm_cluster: SlurmCluster, request_: str, message: str) -> None:
    """EnforcePartLimits=ALL: a request larger than the node fails at sbatch instead of pending forever."""
    option = (
        f"--cpus-per-task={slurm_cluster.cpus + 1}" if request_ == "cpus" else f"--mem={slurm_cluster.memory_mb + 1}"
    )
    with pytest.raises(RuntimeError, match=message):
        slurm_cluster.sbatch(option, "--wrap=true")


def test_gpu_request_sees_cuda_visible_devices(slurm_cluster: SlurmCluster) -> None:
    if slurm_cluster.gpus < 2:
        pytest.skip(f"the cluster of DNSREC_SLURM_CONF has {slurm_cluster.gpus} GPUs (the test cluster has 2)")
    srun = ["srun", f"--partition={slurm_cluster.partition}", "--ntasks=1"]
    one = slurm_cluster.run(*srun, "--gres=gpu:1", "printenv", "CUDA_VISIBLE_DEVICES").stdout.split()
    assert one == ["0"]
    both = slurm_cluster.run(*srun, "--gres=gpu:2", "printenv", "CUDA_VISIBLE_DEVICES").stdout.split()
    assert both == ["0,1"]
    too_many = f"--gres=gpu:{slurm_cluster.gpus + 1}"
    with pytest.raises(RuntimeError, match="Requested node configuration is not available"):
        slurm_cluster.sbatch(too_many, "--wrap=true")


def test_scancel_of_running_job_is_cancelled_in_sacct(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    job = slurm_cluster.sbatch("--wrap=sleep 300", f"--output={tmp_path}/%j.out")
    deadline = time.monotonic() + 30
    while slurm_cluster.run("squeue", "-h", "-j", job, "-o", "%T").stdout.strip() != "RUNNING":
        assert time.monotonic() < deadline, f"job {job} did not start"
        time.sleep(0.2)
    slurm_cluster.run("scancel", job)
    slurm_cluster.wait_gone(job, timeout=30)
    assert slurm_cluster.wait_states(job)[job].startswith("CANCELLED")


def test_submitit_map_array_returns_results(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    def work(x: int) -> tuple[int, str]:  # local: pickled by value, so the job need not import this module
        return x * x, os.environ["SLURM_ARRAY_JOB_ID"]

    executor = submitit.AutoExecutor(folder=tmp_path / "submitit", cluster="slurm")
    executor.update_parameters(
        slurm_partition=slurm_cluster.partition, timeout_min=5, cpus_per_task=1, slurm_mem="200M"
    )
    executor.update_parameters(slurm_array_parallelism=2)
    jobs = executor.map_array(work, [1, 2, 3])
    results = [job.result() for job in jobs]
    assert [r[0] for r in results] == [1, 4, 9]
    array_id = jobs[0].job_id.split("_")[0]
    assert {r[1] for r in results} == {array_id}
    states = slurm_cluster.wait_states(array_id, n=3)
    assert set(states.values()) == {"COMPLETED"}


STUB = """\
#!/bin/bash
# stands in for `dnsrec`: records its arguments and the rank variables
{ echo "args $*"; echo "rank ${RANK:-} ${LOCAL_RANK:-} ${WORLD_SIZE:-} ${MASTER_ADDR:-}:${MASTER_PORT:-}"; } \\
    >"$STUB_OUT/${SLURM_ARRAY_TASK_ID:-r$SLURM_PROCID}.txt"
"""


def _stub(tmp_path: Path) -> dict[str, str]:
    stub = tmp_path / "dnsrec-stub"
    stub.write_text(STUB)
    stub.chmod(0o755)
    return {"DNSREC": str(stub), "STUB_OUT": str(tmp_path)}


def test_run_array_template_reads_its_override_line(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    overrides = tmp_path / "sweep.txt"
    overrides.write_text("# a comment\ndataset=ml-100k search.lam=0.1\n\ndataset=ml-100k search.lam=0.01 seed=1\n")
    env = {**_stub(tmp_path), "OVERRIDES_FILE": str(overrides), "RUN_ROOT": str(tmp_path / "runs")}
    small = ["--cpus-per-task=1", "--mem-per-cpu=100M", "--time=5"]  # fits any CI machine
    template = REPO / "slurm" / "templates" / "run_array.sbatch"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        job = slurm_cluster.sbatch("--array=0-1%2", *small, str(template), cwd=tmp_path)
    slurm_cluster.wait_gone(job)
    assert slurm_cluster.wait_states(job, n=2) == {f"{job}_0": "COMPLETED", f"{job}_1": "COMPLETED"}
    args = [(tmp_path / f"{task}.txt").read_text().splitlines()[0] for task in (0, 1)]
    assert args == [
        f"args run --no-db dataset=ml-100k search.lam=0.1 run_dir={tmp_path}/runs/{job}_0",
        f"args run --no-db dataset=ml-100k search.lam=0.01 seed=1 run_dir={tmp_path}/runs/{job}_1",
    ]


def test_run_array_template_requeues_itself_before_the_time_limit(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    """The USR1 that --signal=B:USR1@300 sends before the time limit (sent by hand here): the task requeues
    itself and runs again, in the same run directory, with SLURM_RESTART_COUNT=1."""
    stub = tmp_path / "dnsrec-stub"
    stub.write_text(
        '#!/bin/bash\necho "restart ${SLURM_RESTART_COUNT:-0} $*" >>"$STUB_OUT/log"\n'
        'if [ "${SLURM_RESTART_COUNT:-0}" -eq 0 ]; then sleep 120; fi\n'
    )
    stub.chmod(0o755)
    (tmp_path / "sweep.txt").write_text("seed=3\n")
    env = {"DNSREC": str(stub), "STUB_OUT": str(tmp_path), "OVERRIDES_FILE": str(tmp_path / "sweep.txt")}
    template = REPO / "slurm" / "templates" / "run_array.sbatch"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**env, "RUN_ROOT": str(tmp_path / "runs")}.items():
            mp.setenv(key, value)
        job = slurm_cluster.sbatch("--array=0", "--cpus-per-task=1", "--mem-per-cpu=100M", str(template), cwd=tmp_path)
    log = tmp_path / "log"
    deadline = time.monotonic() + 30
    while not log.exists():
        assert time.monotonic() < deadline, "the array task did not start"
        time.sleep(0.2)
    slurm_cluster.run("scancel", "--batch", "--signal=USR1", f"{job}_0")
    slurm_cluster.wait_gone(job, timeout=60)
    run_dir = tmp_path / "runs" / f"{job}_0"
    assert log.read_text().splitlines() == [f"restart {n} run --no-db seed=3 run_dir={run_dir}" for n in (0, 1)]
    assert slurm_cluster.wait_states(job) == {f"{job}_0": "COMPLETED"}
    assert "requeueing job" in (tmp_path / f"slurm-dnsrec-run-{job}_0.out").read_text()


def test_train_ranks_template_gives_each_rank_its_rank(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    template = REPO / "slurm" / "templates" / "train_ranks.sbatch"
    small = ["--cpus-per-task=1", "--mem-per-cpu=100M", "--time=5"]
    with pytest.MonkeyPatch.context() as mp:
        for key, value in _stub(tmp_path).items():
            mp.setenv(key, value)
        job = slurm_cluster.sbatch(*small, str(template), "dataset=ml-100k", "train.engine=deepspeed", cwd=tmp_path)
    slurm_cluster.wait_gone(job)
    assert slurm_cluster.wait_states(job)[job] == "COMPLETED"
    port = 20000 + int(job) % 20000
    host = slurm_cluster.run("hostname", "-s").stdout.strip()
    for rank in (0, 1):
        lines = (tmp_path / f"r{rank}.txt").read_text().splitlines()
        assert lines == ["args train dataset=ml-100k train.engine=deepspeed", f"rank {rank} {rank} 2 {host}:{port}"]
