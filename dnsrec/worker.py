"""What a launched job runs, for the sweep driver and `dnsrec reproduce` alike: one point, `dnsrec run`
(search + retrain) or `dnsrec train` (a fixed model), in whatever process the launcher gave.

The driver sends the resolved config (a plain mapping, composed and validated by the driver), so workers
need no Hydra. The run writes its own run directory (result.json, checkpoints); started again on the same
directory (a retry, a SLURM requeue) it resumes from its checkpoints. The driver records it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dnsrec.run_result import RunResult


def run_point(command: str, config: dict[str, Any], run_dir: str) -> RunResult:
    import torch

    from dnsrec.config.run import RunConfig, TrainRunConfig
    from dnsrec.pipeline import dnsrec_run, train_run

    threads = os.environ.get("OMP_NUM_THREADS") or os.environ.get("SLURM_CPUS_PER_TASK")
    if threads and threads.isdigit():
        torch.set_num_threads(int(threads))
    directory = Path(run_dir)
    directory.mkdir(parents=True, exist_ok=True)

    def log(line: str) -> None:
        print(line, flush=True)

    if command == "train":
        return train_run(TrainRunConfig.from_mapping(config), directory, log)
    return dnsrec_run(RunConfig.from_mapping(config), directory, log)
