"""Ray: a local `ray.init()` by default, or an existing cluster (`launcher.address=auto` or host:port).

Each call is one Ray task with the trial's CPUs and GPUs; Ray places it, and a task whose worker or node
dies comes back as an error, which the driver records as a failed trial. Multi-rank trials are not
offered here (use SLURM or the local launcher for those).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from dnsrec.config.launcher import LauncherConfig
from dnsrec.launch.jobs import JobFailed, JobState, LaunchError


class RayJob:
    def __init__(self, ref: Any, name: str) -> None:
        self.ref = ref
        self.name = name
        self.cancelled = False

    @property
    def job_id(self) -> str:
        return str(self.ref.hex())

    def state(self) -> JobState:
        import ray

        ready, _ = ray.wait([self.ref], timeout=0)
        return JobState.DONE if ready else JobState.RUNNING

    def result(self) -> Any:
        import ray
        from ray.exceptions import RayError, RayTaskError

        try:
            return ray.get(self.ref)
        except RayTaskError as e:
            cause = e.cause if getattr(e, "cause", None) is not None else e
            raise JobFailed(f"Ray task {self.name} failed: {type(cause).__name__}: {cause}") from e
        except RayError as e:
            what = "was cancelled" if self.cancelled else f"was lost ({type(e).__name__})"
            raise JobFailed(f"Ray task {self.name} {what}: {str(e).strip().splitlines()[0]}") from e

    def cancel(self) -> None:
        import ray

        self.cancelled = True
        ray.cancel(self.ref, force=True)


class RayLauncher:
    name = "ray"

    def __init__(self, cfg: LauncherConfig) -> None:
        self.cfg = cfg
        self._started_here = False

    def check(self) -> None:
        try:
            import ray
        except ImportError as e:
            raise LaunchError("launcher=ray needs Ray: pip install 'dnsrec[ray]'") from e
        r = self.cfg.resources
        if r.tasks > 1:
            raise LaunchError(
                f"launcher=ray runs one process per trial; launcher.resources asks for {r.tasks} ranks "
                "(use launcher=slurm or launcher=local for multi-rank trials)"
            )
        if not ray.is_initialized():
            try:
                if self.cfg.address:
                    ray.init(address=self.cfg.address, log_to_driver=False)
                else:
                    # a private local Ray: workers inherit this environment (data dir, database URL)
                    ray.init(include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": _env()})
            except (ConnectionError, RuntimeError, ValueError) as e:
                where = self.cfg.address or "a local Ray"
                raise LaunchError(f"launcher=ray: cannot start or reach {where}: {e}") from e
            self._started_here = True
        have = ray.cluster_resources()
        for kind, need in (("CPU", r.cpus), ("GPU", r.gpus)):
            if need > have.get(kind, 0):
                raise LaunchError(
                    f"launcher=ray: a trial asks for {need} {kind}(s) but the Ray cluster has {have.get(kind, 0):g}"
                )

    def submit(self, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], names: Sequence[str]) -> list[RayJob]:
        import ray

        r = self.cfg.resources
        remote = ray.remote(num_cpus=r.cpus, num_gpus=r.gpus, max_retries=0, memory=int(r.mem_gb * 2**30))(fn)
        return [RayJob(remote.options(name=name).remote(*args), name) for args, name in zip(calls, names, strict=True)]

    def refresh(self) -> None:
        pass

    def adopt(self, job_id: str) -> None:
        return None  # a Ray task does not outlive the driver that owns it

    def close(self) -> None:
        import ray

        if self._started_here and ray.is_initialized():
            ray.shutdown()


def _env() -> dict[str, str]:
    keep = ("DNSREC_", "OMP_NUM_THREADS", "PYTHONPATH")
    return {k: v for k, v in os.environ.items() if k.startswith(keep)}
