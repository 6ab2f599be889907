"""`dnsrec run|train --multirun a=1,2 b=x,y [+experiment=...] [hydra/launcher=submitit_slurm]`: a Hydra grid.

Each job is one run in its own directory (runs/multirun/<time>/<n>) that records itself, as `dnsrec run`
does (`dnsrec.recording`); with `hydra/launcher=submitit_slurm` the whole grid is ONE SLURM job array.
Hydra's multirun reads its overrides from `sys.argv` (there is no other way in), so `run_grid` puts them
there for the call and restores the caller's argv after it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from dnsrec.recording import DbOptions, Report, run_and_record


def run_grid(command: str, overrides: list[str], db: DbOptions, report: Report) -> None:
    """Every point of the grid of `sweeps/<command>.yaml` (`train` or `run`) with `overrides`, as Hydra's
    launcher runs them. The caller prepares the points' datasets first (`compose_grid`)."""
    import hydra
    from omegaconf import DictConfig, OmegaConf

    from dnsrec.compose import CONFIG_DIR, register_dataset_group

    def job(cfg: DictConfig) -> str:
        import logging

        from hydra.core.hydra_config import HydraConfig

        from dnsrec.config.run import RunConfig, TrainRunConfig
        from dnsrec.pipeline import dnsrec_run, train_run

        logging.getLogger("alembic").setLevel(logging.WARNING)  # Hydra sets INFO on the root logger
        resolved = OmegaConf.to_container(cfg, resolve=True)
        assert isinstance(resolved, dict)
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        raw: dict[str, Any] = {str(k): v for k, v in resolved.items() if k != "run_dir"}
        if command == "train":
            train_cfg = TrainRunConfig.from_mapping(raw)
            run_and_record(lambda d: train_run(train_cfg, d), run_dir, train_cfg.train.device, db, report)
        else:
            run_cfg = RunConfig.from_mapping(raw)
            run_and_record(lambda d: dnsrec_run(run_cfg, d), run_dir, run_cfg.train.device, db, report)
        return str(run_dir)

    register_dataset_group()  # the group `dataset` is the presets' (dnsrec.compose)
    app = hydra.main(config_path=str(CONFIG_DIR), config_name=command, version_base="1.3")(job)
    argv = sys.argv
    sys.argv = ["dnsrec", "--multirun", *overrides]
    try:
        app()
    finally:
        sys.argv = argv
