"""The typed configuration of one run, built from the composed Hydra mapping (`sweeps/train.yaml`,
`sweeps/run.yaml`): `TrainRunConfig` for `dnsrec train`, `RunConfig` for a DNS-Rec run (search + retrain)
and for retraining a given Architecture. Each refuses unknown keys and overrides that could not take
effect, naming the key to use instead; the groups' own types and ranges are `dnsrec.config`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dnsrec.config import (
    DEFAULT_ATTENTION,
    DEFAULT_DROPOUT,
    DatasetConfig,
    GatesConfig,
    ModelConfig,
    RetrainConfig,
    SearchConfig,
    TrainConfig,
    attention_kind,
    build,
    dropout_rate,
)
from dnsrec.data.presets import Preset, get_preset
from dnsrec.data.sequences import SequenceData
from dnsrec.errors import ConfigError
from dnsrec.nas.space import SearchSpace


def _refuse_unknown_keys(cfg: Mapping[str, Any], known: set[str]) -> None:
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ConfigError(f"unknown config key '{unknown[0]}'; known top-level keys: {', '.join(sorted(known))}")


def _preset(cfg: Mapping[str, Any]) -> Preset | None:
    """The preset the `dataset` group names (an unknown name is `get_preset`'s one error); None if unnamed."""
    dataset = cfg.get("dataset") or {}
    return get_preset(dataset["name"]) if "name" in dataset else None


def _dataset(cfg: Mapping[str, Any]) -> DatasetConfig:
    """The `dataset` group over its preset's keys (the composed group holds them all; a mapping built by
    hand may name the preset alone)."""
    preset = _preset(cfg)
    dataset = {**(preset.run_keys() if preset else {}), **(cfg.get("dataset") or {})}
    if "pruning" in dataset:
        dataset["pruning"] = tuple(dataset["pruning"])
    return build(DatasetConfig, dataset, "dataset.")


# Run keys added with a default other than what runs did before the key existed: a recorded run config
# without the key ran with this value, whatever today's default is (`RunConfig.from_recorded` and the reproduce
# planner's matching of recorded runs read it).
RUN_KEYS_BEFORE_THEY_EXISTED: dict[str, Any] = {"search.depth_hold": 0.0}

# Keys of the `train` group that another key sets: given there, they would be silently replaced.
_SET_ELSEWHERE = {"lr": "lr", "batch": "batch", "seed": "seed"}  # train.<key> -> the top-level key
# In a DNS-Rec run the retraining's schedule comes from `retrain.*` (the search's batch from `search.batch`).
_SET_ELSEWHERE_IN_RUN = {
    "batch": "retrain.batch (or search.batch)",
    "max_epochs": "retrain.max_epochs",
    "patience": "retrain.patience",
}


# The `train` keys a DNS-Rec run takes from elsewhere: what a retraining's command line gives by other names.
TRAIN_KEYS_SET_ELSEWHERE_IN_RUN = frozenset(_SET_ELSEWHERE) | frozenset(_SET_ELSEWHERE_IN_RUN)


def _refuse_shadowed(train: Mapping[str, Any], set_by: Mapping[str, str]) -> None:
    for key, instead in set_by.items():
        if key in train:
            raise ConfigError(f"config key 'train.{key}' has no effect here: set '{instead}' instead")


def _train(cfg: Mapping[str, Any], extra: Mapping[str, Any] | None = None, *, run: bool = False) -> TrainConfig:
    train = dict(cfg.get("train") or {})
    _refuse_shadowed(train, _SET_ELSEWHERE | (_SET_ELSEWHERE_IN_RUN if run else {}))
    for key in _SET_ELSEWHERE:
        if key in cfg:
            train[key] = cfg[key]
    train.update(extra or {})
    return build(TrainConfig, train, "train.")


@dataclass(frozen=True)
class TrainRunConfig:
    dataset: DatasetConfig
    model: ModelConfig
    train: TrainConfig
    data_dir: str | None = None

    @staticmethod
    def from_mapping(cfg: Mapping[str, Any]) -> TrainRunConfig:
        """From the composed Hydra config (`sweeps/train.yaml`): groups `dataset`, `model`, `train` plus the
        top-level shortcuts `attention`, `lr`, `batch`, `seed` (DESIGN.md key names)."""
        _refuse_unknown_keys(
            cfg, {"dataset", "model", "train", "attention", "lr", "batch", "seed", "data_dir", "run_dir"}
        )
        dataset = _dataset(cfg)
        model = dict(cfg.get("model") or {})
        if "attention" in cfg:
            model["attention"] = cfg["attention"]
        # model.d and model.inner: null (sweeps/model/*.yaml) = the dataset preset's baseline widths
        baseline = get_preset(dataset.name).baseline
        for key, width in (("d", baseline.d), ("inner", baseline.inner)):
            if model.get(key) is None:
                model[key] = width
        return TrainRunConfig(
            dataset=dataset,
            model=build(ModelConfig, model, "model."),
            train=_train(cfg),
            data_dir=cfg.get("data_dir"),
        )


@dataclass(frozen=True)
class RunConfig:
    """A whole DNS-Rec run (`sweeps/run.yaml`): search, then retraining of the compact model."""

    dataset: DatasetConfig
    search: SearchConfig
    gates: GatesConfig
    retrain: RetrainConfig
    train: TrainConfig  # lr, seed, device, precision, evaluation batch: shared by both stages
    attention: str = DEFAULT_ATTENTION
    dropout: float = DEFAULT_DROPOUT
    data_dir: str | None = None

    @staticmethod
    def from_mapping(cfg: Mapping[str, Any]) -> RunConfig:
        known = {"dataset", "search", "gates", "retrain", "train", "attention", "dropout", "lr", "seed", "data_dir"}
        _refuse_unknown_keys(cfg, known | {"run_dir", "arch"})
        attention = cfg.get("attention", DEFAULT_ATTENTION)
        attention_kind("attention", attention)
        dropout = cfg.get("dropout", DEFAULT_DROPOUT)
        dropout_rate("dropout", dropout)
        search = dict(cfg.get("search") or {})
        preset = _preset(cfg)
        if search.get("lam") is None:  # null (sweeps/run.yaml) or left out = the dataset preset's lambda
            search["lam"] = preset.lam if preset else SearchConfig.lam
        if search.get("depth_hold") is None:  # null or left out = the search method's own
            search["depth_hold"] = SearchConfig.depth_hold_of(search.get("method", SearchConfig.method))
        run = RunConfig(
            dataset=_dataset(cfg),
            search=build(SearchConfig, search, "search."),
            gates=build(GatesConfig, dict(cfg.get("gates") or {}), "gates."),
            retrain=build(RetrainConfig, dict(cfg.get("retrain") or {}), "retrain."),
            train=_train(cfg, run=True),
            attention=attention,
            dropout=float(dropout),
            data_dir=cfg.get("data_dir"),
        )
        run.space_for(n_items=1, max_len=1)  # validate pruning, heads and gates before any data is read
        run.check_flops_bound()
        return run

    @staticmethod
    def from_recorded(config: Mapping[str, Any], source: str) -> RunConfig:
        """The config a run recorded in its result.json (`dataclasses.asdict` of this class), rebuilt; keys a
        result written before they existed take what runs did then (`RUN_KEYS_BEFORE_THEY_EXISTED`), else
        today's defaults. `source` names the file in errors."""
        try:
            groups = {name: dict(config.get(name) or {}) for name in ("dataset", "search", "gates", "retrain", "train")}
            for key, value in RUN_KEYS_BEFORE_THEY_EXISTED.items():
                group, name = key.split(".")
                groups[group].setdefault(name, value)
            groups["dataset"]["pruning"] = tuple(groups["dataset"].get("pruning", ()))
            run = RunConfig(
                dataset=build(DatasetConfig, groups["dataset"], "dataset."),
                search=build(SearchConfig, groups["search"], "search."),
                gates=build(GatesConfig, groups["gates"], "gates."),
                retrain=build(RetrainConfig, groups["retrain"], "retrain."),
                train=build(TrainConfig, groups["train"], "train."),
                attention=config.get("attention", DEFAULT_ATTENTION),
                dropout=float(config.get("dropout", DEFAULT_DROPOUT)),
                data_dir=config.get("data_dir"),
            )
            run.space_for(n_items=1, max_len=1)
        except (ConfigError, TypeError, ValueError, AttributeError) as e:
            raise ConfigError(f"{source}: key 'config' is not a run's recorded config: {e}") from e
        return run

    def layer_flops_inexact(self) -> tuple[str, Any] | None:
        """The key (and its value) that makes the sum of the searched layers' costs differ from the FLOPs of the
        model retraining builds, or None where they are equal: the `narrow` shape of a shared width with the
        searched gates (a per-layer model's residual is its widest layer's, `wide` keeps d, other gates cost
        more)."""
        for key, value, exact in (
            ("search.per_layer_alpha", self.search.per_layer_alpha, not self.search.per_layer_alpha),
            ("retrain.shape", self.retrain.shape, self.retrain.shape == "narrow"),
            ("retrain.gate_layers", self.retrain.gate_layers, self.retrain.gate_layers is None),
        ):
            if not exact:
                return key, value
        return None

    def check_flops_bound(self) -> None:
        """`search.max_flops` bounds the searched layers' costs, so it must be where they are the retrained
        model's FLOPs (`layer_flops_inexact`)."""
        if self.search.max_flops is None or (conflict := self.layer_flops_inexact()) is None:
            return
        key, value = conflict
        raise ConfigError(
            f"config key {key!r}: got {value!r} with search.max_flops={self.search.max_flops:g}; the bound "
            f"is exact only with its defaults (search.per_layer_alpha=false, retrain.shape=narrow, "
            f"retrain.gate_layers=null); leave {key} at its default or search.max_flops at null"
        )

    def space(self, data: SequenceData) -> SearchSpace:
        return self.space_for(data.n_items, data.max_len)

    def space_for(self, n_items: int, max_len: int) -> SearchSpace:
        return SearchSpace(
            n_items=n_items,
            max_len=max_len,
            d=self.dataset.d,
            inner=self.dataset.inner,
            n_heads=self.search.heads,
            n_layers=self.search.layers,
            pruning=self.dataset.pruning,
            gate_layers=self.gates.layers,
            attention=self.attention,
            dropout=self.dropout,
        )

    def retrain_train(self) -> TrainConfig:
        r = self.retrain
        return dataclasses.replace(self.train, batch=r.batch, max_epochs=r.max_epochs, patience=r.patience)
