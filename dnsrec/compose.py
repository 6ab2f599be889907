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
