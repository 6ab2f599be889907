"""Hydra composition of the `sweeps/` config tree into one plain, resolved mapping.

Entry points (the CLI, the sweep driver, benchmarks) compose here; everything below them receives the
mapping and builds typed configs from it (`dnsrec.config`), so Hydra never reaches the library.

The group `dataset` has no files: it is generated from the dataset presets (`dnsrec.data.presets`, the one
home of a dataset's N, d, D, pruning, files and filtering), and a `dataset=NAME` naming no preset is
refused with the presets' own error before Hydra composes.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from dnsrec.errors import ConfigError

CONFIG_DIR = Path(os.environ.get("DNSREC_CONFIG_DIR", Path(__file__).resolve().parent.parent / "sweeps"))


def register_dataset_group() -> None:
    """Hydra's group `dataset`: one entry per preset, holding its `run_keys()` (what `sweeps/dataset/*.yaml`
    held). Called before every composition, so the group is always exactly the presets."""
    from hydra.core.config_store import ConfigStore

    from dnsrec.data import presets  # here, not at the top: `dnsrec --help` and `dnsrec results` need no numpy

    store = ConfigStore.instance()
    store.repo.pop("dataset", None)  # a preset removed since (a test's) is no longer an option
    for preset in presets.PRESETS.values():  # read at each call: the presets as they are now
        store.store(group="dataset", name=preset.name, node=preset.run_keys())


def _check_datasets(overrides: list[str]) -> None:
    """Every preset a `dataset=NAME` (or `dataset=A,B` sweep) override names exists: else `get_preset`'s
    error listing the known names, the same as `load_dataset` gives, instead of Hydra's missing-file one."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from dnsrec.data import presets

    for override in OverridesParser.create().parse_overrides(overrides):
        if override.key_or_group.lstrip("+~") == "dataset.name" and not override.is_delete():
            value = override.value()
            for name in list(override.sweep_string_iterator()) if override.is_sweep_override() else [value]:
                presets.get_preset(str(name))  # an unknown name: the one unknown-preset error
                raise ConfigError(
                    f"override '{override.input_line}': dataset.name renames the chosen preset but keeps its N, d, "
                    f"D and pruning; choose the preset itself with dataset={name}"
                )
        if override.key_or_group != "dataset" or override.package is not None:
            continue
        value = override.value()
        if override.is_sweep_override():
            names = list(override.sweep_string_iterator())
        else:
            names = [value] if isinstance(value, str) else []
        for name in names:
            presets.get_preset(name)


def compose(config_name: str, overrides: list[str]) -> dict[str, Any]:
    """`sweeps/<config_name>.yaml` with Hydra `overrides` applied, interpolations resolved."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not CONFIG_DIR.is_dir():
        raise ConfigError(f"config directory {CONFIG_DIR} not found (set DNSREC_CONFIG_DIR)")
    register_dataset_group()
    try:
        _check_datasets(overrides)
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

    register_dataset_group()
    parser = OverridesParser.create()
    try:
        _check_datasets(overrides)
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
            _check_datasets(declared)
            batches = BasicSweeper.split_arguments(parser.parse_overrides([*declared, *overrides]), None)
            jobs = [hydra_compose(config_name=config_name, overrides=list(job)) for b in batches for job in b]
            resolved = [OmegaConf.to_container(job, resolve=True) for job in jobs]
    except (HydraException, OmegaConfBaseException, StopIteration) as e:
        raise ConfigError(f"bad override in {' '.join(overrides) or '(none)'}: {e}") from e
    return [{str(k): v for k, v in job.items()} for job in resolved if isinstance(job, dict)]


def parse_script_args(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """A benchmark script's command line: its own arguments before `--` (parsed by `parser`), the Hydra
    overrides to compose after it (`script.py RUN_DIR --batches 8 -- dataset=ml-100k seed=0`)."""
    cut = argv.index("--") if "--" in argv else len(argv)
    return parser.parse_args(argv[:cut]), argv[cut + 1 :]
