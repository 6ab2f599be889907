"""SLURM through submitit: each batch of calls becomes ONE job array (`--array=0-N%P`).

Job states come from `sacct` (submitit's watcher), refreshed once per driver poll rather than on
submitit's own back-off, so a cancelled or lost job is noticed within one poll. Calls are wrapped in a
`Checkpointable`: on preemption or timeout SLURM requeues the task with the same arguments, and the run
resumes from the checkpoints in its run directory.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dnsrec.config.launcher import LauncherConfig
from dnsrec.files import describe
from dnsrec.launch.folders import check_if_present, private_folder
from dnsrec.launch.jobs import JobFailed, JobState, LaunchError, credentials_withheld

# sacct states of a job that may still produce a result: not started yet, and started
_QUEUED = {"UNKNOWN", "PENDING", "READY", "CONFIGURING", "REQUEUED"}
_ALIVE = {"RUNNING", "COMPLETING", "PREEMPTED", "SUSPENDED", "RESIZING"}


def _requeueable(fn: Callable[..., Any]) -> Any:
    from submitit.helpers import Checkpointable

    class Requeueable(Checkpointable):
        """Resubmits the same call after preemption or timeout (the run resumes from its checkpoints)."""

        def __init__(self, fn: Callable[..., Any]) -> None:
            self.fn = fn

        def __call__(self, *args: Any) -> Any:
            return self.fn(*args)

    return Requeueable(fn)


class SlurmJob:
    def __init__(self, job: Any) -> None:
        self._job = job

    @property
    def job_id(self) -> str:
        return str(self._job.job_id)

    def state(self) -> JobState:
        # e.g. "PENDING", "RUNNING", "CANCELLED by 0"; "UNKNOWN" until sacct lists the job
        state = self._job.watcher.get_state(self.job_id, mode="cache").upper().split()[0]
        if state in _QUEUED:
            return JobState.PENDING
        return JobState.RUNNING if state in _ALIVE else JobState.DONE

    def result(self) -> Any:
        from submitit.core.utils import FailedJobError, UncompletedJobError

        state = self._job.watcher.get_state(self.job_id, mode="cache")
        try:
            return self._job.result()
        except FailedJobError as e:
            lines = [line for line in str(e).strip().splitlines() if line.strip()]
            raise JobFailed(f"SLURM job {self.job_id} failed: {lines[-1] if lines else e}") from e
        except UncompletedJobError as e:
            raise JobFailed(f"SLURM job {self.job_id} ended {state} without a result") from e

    def cancel(self) -> None:
        self._job.cancel(check=False)


class SlurmLauncher:
    name = "slurm"

    def __init__(self, cfg: LauncherConfig, folder: Path, parallel: int, poll_seconds: float) -> None:
        self.cfg = cfg
        self.folder = Path(cfg.folder) if cfg.folder else folder
        self.parallel = cfg.array_parallelism or parallel
        self.poll_seconds = poll_seconds
        self._last_refresh = 0.0
        self._executor: Any = None

    def _sbatch_options(self) -> list[str]:
        r = self.cfg.resources
        opts = [f"--time={r.time_min}", f"--ntasks-per-node={r.tasks}", f"--cpus-per-task={r.cpus}"]
        opts.append(f"--mem={int(r.mem_gb * 1024 * r.tasks)}M")
        if self.cfg.partition:
            opts.append(f"--partition={self.cfg.partition}")
        if r.gpus:
            opts.append(f"--gpus-per-node={r.gpus}")
        opts += [f"--{k.replace('_', '-')}={v}" for k, v in self.cfg.extra.items()]
        return opts

    def check(self) -> None:
        """`sbatch --test-only` with the trial's request: refused requests fail here, before any job; the job
        folder is this user's alone (submitit's pickles are loaded by the jobs and by this driver)."""
        check_if_present(self.folder, "launcher folder")
        if shutil.which("sbatch") is None:
            raise LaunchError("launcher=slurm: `sbatch` not found on PATH (is this a SLURM login node?)")
        cmd = ["sbatch", "--test-only", *self._sbatch_options(), "--wrap=true"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired as e:
            raise LaunchError("launcher=slurm: `sbatch --test-only` did not answer in 60 s") from e
        if done.returncode != 0:
            why = (done.stderr or done.stdout).strip().replace("sbatch: error: ", "")
            raise LaunchError(f"launcher=slurm refuses the trial's request ({' '.join(cmd[2:-1])}): {why}")

    def executor(self) -> Any:
        if self._executor is None:
            import submitit

            private_folder(self.folder, "launcher folder")  # 0700: submitit's pickles, this user's alone

            r = self.cfg.resources
            ex = submitit.AutoExecutor(
                folder=self.folder / "%j", cluster="slurm", slurm_max_num_timeout=self.cfg.max_requeue
            )
            params: dict[str, Any] = {
                "timeout_min": r.time_min,
                "tasks_per_node": r.tasks,
                "cpus_per_task": r.cpus,
                "mem_gb": r.mem_gb * r.tasks,
                "slurm_array_parallelism": self.parallel,
                "slurm_additional_parameters": dict(self.cfg.extra),
            }
            if self.cfg.partition:
                params["slurm_partition"] = self.cfg.partition
            if r.gpus:
                params["gpus_per_node"] = r.gpus
            ex.update_parameters(**params)
            self._executor = ex
        return self._executor

    def submit(self, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], names: Sequence[str]) -> list[SlurmJob]:
        from submitit.core.utils import FailedSubmissionError

        ex = self.executor()
        ex.update_parameters(name=names[0].rsplit("-", 1)[0] if names else "dnsrec")
        task = _requeueable(fn)
        try:
            with credentials_withheld():  # jobs never open the database: no password in their environment
                jobs = ex.map_array(task, *zip(*calls, strict=True)) if calls else []
        except FailedSubmissionError as e:
            raise LaunchError(f"launcher=slurm: sbatch refused the job array: {str(e).strip()[-500:]}") from e
        except OSError as e:  # submitit's job files: a full disk, a folder that cannot be written
            raise LaunchError(f"launcher=slurm: {describe(Path(e.filename or self.folder / 'x'), e)}") from e
        self._refresh(force=True)
        return [SlurmJob(j) for j in jobs]

    def refresh(self) -> None:
        self._refresh(force=False)

    def _refresh(self, force: bool) -> None:
        """One `sacct` call for every watched job, at most once per poll interval."""
        from submitit.slurm.slurm import SlurmJob as SubmititSlurmJob

        now = time.monotonic()
        if force or now - self._last_refresh >= self.poll_seconds:
            SubmititSlurmJob.watcher.update()
            self._last_refresh = now

    def adopt(self, job_id: str) -> SlurmJob | None:
        from submitit.slurm.slurm import SlurmJob as SubmititSlurmJob

        job: Any = SubmititSlurmJob(
            folder=self.folder / "%j", job_id=job_id, tasks=tuple(range(self.cfg.resources.tasks))
        )
        self._refresh(force=True)
        adopted = SlurmJob(job)
        return adopted if adopted.state() is not JobState.DONE else None

    def close(self) -> None:
        pass
