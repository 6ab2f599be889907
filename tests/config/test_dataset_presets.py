"""The dataset preset (dnsrec/data/presets.py) is the one home of a dataset's N, supernet widths d and D,
pruning intensities, baseline widths, files and filtering: the Hydra group `dataset` is generated from it,
an unknown name fails one way, and `dnsrec train` takes its model widths from it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import MappingProxyType

import pytest

from dnsrec.compose import CONFIG_DIR, compose, compose_grid
from dnsrec.config import ATTENTIONS, DEFAULT_ATTENTION, DEFAULT_DROPOUT
from dnsrec.config.run import RunConfig, TrainRunConfig
from dnsrec.data import load_dataset, prepare_dataset, presets
from dnsrec.data.presets import PRESETS, Widths, get_preset, preset_names
from dnsrec.errors import ConfigError


def test_the_dataset_group_is_generated_from_the_presets() -> None:
    assert not list((CONFIG_DIR / "dataset").glob("*.yaml")), "the presets are the group: no YAML twins"
    for name, preset in PRESETS.items():
        raw = compose("run", [f"dataset={name}"])
        assert raw["dataset"] == preset.run_keys()
        ds = RunConfig.from_mapping(raw).dataset  # also: its pruning and widths make a valid search space
        assert (ds.name, ds.max_len, ds.d, ds.inner, ds.pruning) == (
            name, preset.max_len, preset.supernet.d, preset.supernet.inner, preset.pruning
        )  # fmt: skip
    over = RunConfig.from_mapping(compose("run", ["dataset=gowalla-100", "dataset.d=32", "dataset.max_len=50"]))
    assert (over.dataset.d, over.dataset.max_len, over.dataset.inner) == (32, 50, 256)


def test_search_lambda_is_the_presets_unless_given() -> None:
    """`search.lam: null` (sweeps/run.yaml) takes the dataset preset's lambda; an override or a sweep's value wins."""
    assert compose("run", [])["search"]["lam"] is None
    assert RunConfig.from_mapping(compose("run", ["dataset=ml-100k"])).search.lam == 0.1  # the paper's
    assert RunConfig.from_mapping(compose("run", ["dataset=gowalla-1k"])).search.lam == 0.3
    assert get_preset("gowalla-1k").lam == 0.3 and get_preset("gowalla").lam == 0.1
    by_hand = compose("run", ["dataset=gowalla-1k"])
    del by_hand["search"]["lam"]
    assert RunConfig.from_mapping(by_hand).search.lam == 0.3  # a mapping that leaves it out: the preset's too
    given = RunConfig.from_mapping(compose("run", ["dataset=gowalla-1k", "search.lam=0.02"]))
    assert given.search.lam == 0.02
    with pytest.raises(ConfigError, match=r"search\.lam"):
        RunConfig.from_mapping(compose("run", ["dataset=gowalla-1k", "search.lam=-1"]))


def test_a_mapping_may_name_the_preset_alone() -> None:
    """A config built by hand (not composed) takes every dataset key it leaves out from the named preset."""
    raw = compose("run", [])
    raw["dataset"] = {"name": "gowalla-100", "d": 32}
    ds = RunConfig.from_mapping(raw).dataset
    assert (ds.d, ds.inner, ds.max_len, ds.pruning) == (32, 256, 100, (0.0, 0.5, 0.75))


UNKNOWN: list[Callable[[], object]] = [
    lambda: compose("train", ["dataset=nosuch"]),
    lambda: compose("run", ["+experiment=short", "dataset=nosuch"]),
    lambda: compose_grid("run", ["dataset=ml-100k,nosuch"]),
    lambda: TrainRunConfig.from_mapping(compose("train", ["dataset.name=nosuch"])),
    lambda: RunConfig.from_mapping(compose("run", ["dataset.name=nosuch"])),
    lambda: load_dataset("nosuch"),
    lambda: prepare_dataset("nosuch"),
]


@pytest.mark.parametrize("way", range(len(UNKNOWN)))
def test_an_unknown_dataset_fails_one_way(way: int) -> None:
    """Before, `dataset=nosuch` was Hydra's missing-file error and a bad `dataset.name` the loader's."""
    with pytest.raises(ConfigError) as error:
        UNKNOWN[way]()
    assert str(error.value) == f"dataset: unknown preset 'nosuch'; known: {', '.join(preset_names())}"


def test_dnsrec_train_takes_the_presets_baseline_widths(monkeypatch: pytest.MonkeyPatch) -> None:
    """Gowalla's supernet is d 64, its SASRec baseline d 128 (docs/method.md): the preset says both, and
    `dnsrec train dataset=gowalla-1k` trains d 128, D 256 (as before, when sweeps/model/sasrec.yaml fixed
    them for every dataset), while `dnsrec run` searches a d 64 supernet."""
    gowalla = get_preset("gowalla-1k")
    assert (gowalla.supernet, gowalla.baseline) == (Widths(64, 256), Widths(128, 256))
    for family in ("sasrec", "fdsa", "sasrecf"):
        model = TrainRunConfig.from_mapping(compose("train", ["dataset=gowalla-1k", f"model={family}"])).model
        assert (model.d, model.inner) == (128, 256)
    assert RunConfig.from_mapping(compose("run", ["dataset=gowalla-1k"])).dataset.d == 64

    # The preset decides (not the model group), and an explicit model.d / model.inner still wins.
    changed = dataclasses.replace(gowalla, baseline=Widths(32, 64))
    monkeypatch.setattr(presets, "PRESETS", MappingProxyType({**PRESETS, "gowalla-1k": changed}))
    model = TrainRunConfig.from_mapping(compose("train", ["dataset=gowalla-1k"])).model
    assert (model.d, model.inner) == (32, 64)
    model = TrainRunConfig.from_mapping(compose("train", ["dataset=gowalla-1k", "model.d=48"])).model
    assert (model.d, model.inner) == (48, 64)


def test_attention_and_dropout_have_one_definition() -> None:
    train = TrainRunConfig.from_mapping(compose("train", []))
    run = RunConfig.from_mapping(compose("run", []))
    assert train.model.attention == run.attention == run.space_for(1, 1).attention == DEFAULT_ATTENTION
    assert train.model.dropout == run.dropout == run.space_for(1, 1).dropout == DEFAULT_DROPOUT
    for stage, key in (("train", "model.attention"), ("run", "attention")):
        make = TrainRunConfig.from_mapping if stage == "train" else RunConfig.from_mapping
        with pytest.raises(ConfigError) as error:
            make(compose(stage, ["attention=quadratic"]))
        choices = ", ".join(repr(a) for a in ATTENTIONS)
        assert str(error.value) == f"config key '{key}': expected one of {choices}, got 'quadratic'"
    for stage, override in (("train", "model.dropout=1.5"), ("run", "dropout=1.5")):
        make = TrainRunConfig.from_mapping if stage == "train" else RunConfig.from_mapping
        with pytest.raises(ConfigError, match=r"expected a number in \[0, 1\), got 1\.5"):
            make(compose(stage, [override]))


def test_renaming_the_chosen_preset_is_refused_with_the_key_to_use() -> None:
    """`dataset=ml-100k dataset.name=gowalla-1k` used to give gowalla-1k's files with ML-100K's N, d, D and
    pruning: a mixed config nobody asked for."""
    with pytest.raises(ConfigError, match=r"dataset\.name.*choose the preset itself with dataset=gowalla-1k"):
        compose("run", ["dataset=ml-100k", "dataset.name=gowalla-1k"])
