"""Build the launcher a config names."""

from __future__ import annotations

from pathlib import Path

from dnsrec.config.launcher import LauncherConfig
from dnsrec.launch.jobs import Launcher


def make_launcher(cfg: LauncherConfig, folder: Path, parallel: int, poll_seconds: float) -> Launcher:
    """`folder` holds the launcher's job files (logs, pickled calls); `parallel` is the number of trials
    in flight, which caps local workers and SLURM array parallelism."""
    if cfg.name == "local":
        from dnsrec.launch.local import LocalLauncher

        return LocalLauncher(folder, cfg.resources, workers=parallel)
    if cfg.name == "slurm":
        from dnsrec.launch.slurm import SlurmLauncher

        return SlurmLauncher(cfg, folder, parallel, poll_seconds)
    from dnsrec.launch.ray import RayLauncher

    return RayLauncher(cfg)
