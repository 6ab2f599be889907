"""Where runs execute: a small process pool here, SLURM through submitit, or Ray.

Every launcher takes a batch of calls `fn(*args)` and hands back one `Job` per call; the sweep driver polls
the jobs and never needs to know where they run. Nothing here imports torch: `fn` is imported by the
worker process, not by the driver's launcher code.
"""

from __future__ import annotations

from dnsrec.config.launcher import LauncherConfig, Resources, launcher_config
from dnsrec.launch.factory import make_launcher
from dnsrec.launch.jobs import Job, JobFailed, JobState, Launcher, LaunchError

__all__ = [
    "Job",
    "JobFailed",
    "JobState",
    "LaunchError",
    "Launcher",
    "LauncherConfig",
    "Resources",
    "launcher_config",
    "make_launcher",
]
