"""Bad configuration values fail at start with a message naming the key."""

from __future__ import annotations

import dataclasses
import re

import pytest

from dnsrec.compose import compose
from dnsrec.config import TrainConfig, build, dotted_keys
from dnsrec.config.run import RunConfig, TrainRunConfig
from dnsrec.errors import ConfigError, DNSRecError


def test_defaults_compose_and_validate() -> None:
    cfg = TrainRunConfig.from_mapping(compose("train", []))
    assert cfg.dataset.name == "ml-100k" and cfg.model.attention == "linear"
    assert cfg.train.lr == pytest.approx(1e-3) and cfg.train.batch == 2048 and cfg.train.patience == 10


def test_dotted_keys_flattens_nested_mappings_and_keeps_every_key() -> None:
    nested = {"search": {"lam": 0.1, "hold": {"at": 0.5}}, "seed": 3, "pruning": (5, 5), "extra": {}}
    assert dotted_keys(nested) == {"search.lam": 0.1, "search.hold.at": 0.5, "seed": 3, "pruning": (5, 5), "extra": {}}
    assert dotted_keys({"a": {"b": 1}}, "run.") == {"run.a.b": 1}


def test_shortcuts_reach_their_groups() -> None:
    raw = compose("train", ["dataset=gowalla-100", "attention=softmax", "lr=0.005", "batch=64", "seed=3"])
    cfg = TrainRunConfig.from_mapping(raw)
    assert (cfg.dataset.name, cfg.dataset.max_len, cfg.model.attention) == ("gowalla-100", 100, "softmax")
    assert (cfg.train.lr, cfg.train.batch, cfg.train.seed) == (0.005, 64, 3)


def test_depth_hold_is_the_methods_own_unless_given_and_a_recorded_config_without_it_held_nothing() -> None:
    def hold(*overrides: str) -> float:
        return RunConfig.from_mapping(compose("run", list(overrides))).search.depth_hold

    assert hold() == 0.5 and hold("search.method=darts") == 0.0 and hold("search.method=recnas") == 0.0
    assert hold("search.depth_hold=0.25") == 0.25 and hold("search.method=proxyless", "search.depth_hold=0.5") == 0.5
    recorded = dataclasses.asdict(RunConfig.from_mapping(compose("run", [])))
    assert RunConfig.from_recorded(recorded, "result.json").search.depth_hold == 0.5
    del recorded["search"]["depth_hold"]  # a result written before the key: beta moved from the first step
    assert RunConfig.from_recorded(recorded, "result.json").search.depth_hold == 0.0


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("lr=-1", "train.lr"),
        ("batch=0", "train.batch"),
        ("train.patience=0", "train.patience"),
        ("train.mode=sideways", "train.mode"),
        ("attention=quadratic", "model.attention"),
        ("model.dropout=1.5", "model.dropout"),
        ("model.heads=7", "model.heads"),
        ("+train.lrate=0.1", "train.lrate"),
        ("train.device=tpu", "train.device"),
    ],
)
def test_out_of_range_values_name_the_key(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        TrainRunConfig.from_mapping(compose("train", [override]))


def test_unknown_dataset_group_is_a_clear_error() -> None:
    with pytest.raises(DNSRecError, match="nosuchdata"):
        compose("train", ["dataset=nosuchdata"])


def test_required_and_type_errors() -> None:
    with pytest.raises(ConfigError, match=r"train\.batch"):
        build(TrainConfig, {"batch": "many"}, "train.")


@pytest.mark.parametrize(
    ("stage", "override", "instead"),
    [
        ("train", "+train.lr=0.01", "'lr'"),
        ("train", "+train.seed=3", "'seed'"),
        ("run", "+train.lr=0.01", "'lr'"),
        ("run", "+train.max_epochs=3", "'retrain.max_epochs'"),
        ("run", "+train.patience=3", "'retrain.patience'"),
        ("run", "+train.batch=64", "'retrain.batch"),
    ],
)
def test_a_train_key_that_another_key_sets_is_refused(stage: str, override: str, instead: str) -> None:
    """`+train.lr=0.01` used to be accepted and then replaced by the top-level lr (the run trained at 0.001)."""
    make = TrainRunConfig.from_mapping if stage == "train" else RunConfig.from_mapping
    key = override.lstrip("+").split("=")[0]
    with pytest.raises(
        ConfigError, match=f"config key '{re.escape(key)}' has no effect here: set {re.escape(instead)}"
    ):
        make(compose(stage, [override]))


def test_the_compact_experiment_changes_exactly_its_five_search_keys_and_the_gates() -> None:
    """`+experiment=compact` (sweeps/experiment/compact.yaml, the configuration measured against the issue's bars)
    composes to a valid run config that differs from the defaults in exactly the keys the file names."""

    def flat_config(cfg: RunConfig) -> dict[str, object]:
        return dotted_keys(dataclasses.asdict(cfg))

    for dataset in ("ml-100k", "gowalla-1k"):
        default = flat_config(RunConfig.from_mapping(compose("run", [f"dataset={dataset}"])))
        compact = flat_config(RunConfig.from_mapping(compose("run", [f"dataset={dataset}", "+experiment=compact"])))
        changed = {k: compact[k] for k in compact if compact[k] != default[k]}
        assert changed == {
            "gates.layers": 0,
            "search.lam": 0.01,
            "search.weight_exits": "each",
            "search.weight_widths": "uniform",
            "search.arch_exits": "each",
            "search.max_flops": 0.25,
        }, dataset
