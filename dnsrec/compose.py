"""Hydra composition of the `sweeps/` config tree into one plain, resolved mapping.

Entry points (the CLI, the sweep driver, benchmarks) compose here; everything below them receives the
mapping and builds typed configs from it (`dnsrec.config`), so Hydra never reaches the library.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dnsrec.errors import ConfigError

CONFIG_DIR = Path(os.environ.get("DNSREC_CONFIG_DIR", Path(__file__).resolve().parent.parent / "sweeps"))


def compose(config_name: str, overrides: list[str]) -> dict[str, Any]:
    """`sweeps/<config_name>.yaml` with Hydra `overrides` applied, interpolations resolved."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not CONFIG_DIR.is_dir():
        raise ConfigError(f"config directory {CONFIG_DIR} not found (set DNSREC_CONFIG_DIR)")
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=overrides)
        resolved = OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException) as e:
        raise ConfigError(f"bad override in {' '.join(overrides) or '(none)'}: {e}") from e
    assert isinstance(resolved, dict)
    return {str(k): v for k, v in resolved.items()}


def compose_grid(config_name: str, overrides: list[str]) -> list[dict[str, Any]]:
    """Every job's composed config of a Hydra multirun (`a=1,2 b=x,y`, plus an experiment's
    `hydra.sweeper.params`), expanded as Hydra's basic sweeper does: for checks that must see each point
    before any job starts (its dataset, for one)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    parser = OverridesParser.create()
    try:
        parsed = parser.parse_overrides(overrides)
        # the experiment's grid is read with each command-line sweep at its first value
        first = [
            f"{o.get_key_element()}={next(o.sweep_string_iterator())}" if o.is_sweep_override() else str(o.input_line)
            for o in parsed
        ]
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            hydra_cfg = hydra_compose(config_name=config_name, overrides=first, return_hydra_config=True)
            params = hydra_cfg.hydra.sweeper.get("params") or {}
            declared = [f"{k}={v}" for k, v in params.items()]
            batches = BasicSweeper.split_arguments(parser.parse_overrides([*declared, *overrides]), None)
            jobs = [hydra_compose(config_name=config_name, overrides=list(job)) for b in batches for job in b]
            resolved = [OmegaConf.to_container(job, resolve=True) for job in jobs]
    except (HydraException, OmegaConfBaseException, StopIteration) as e:
        raise ConfigError(f"bad override in {' '.join(overrides) or '(none)'}: {e}") from e
    return [{str(k): v for k, v in job.items()} for job in resolved if isinstance(job, dict)]
