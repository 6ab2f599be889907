"""A newcomer's path (README, "Development": adding a dataset), followed for a toy dataset.

Adding a preset means adding one `Preset` to `_PRESETS` in dnsrec/data/presets.py (a dataset's layouts name
their reader functions, which are code). This test does every step of the README but that edit, which it
stands in for by adding the same `Preset` to `PRESETS` for the test's duration (the package stays as it is):
1. the files in a real format the loaders accept (a RecBole atomic `.inter` file) in a data directory;
2. the preset: layout and reader, N, supernet widths, pruning, baseline widths, filtering;
3. `dnsrec data stats toy`, and a tiny `dnsrec train dataset=toy` through the CLI.
"""

from __future__ import annotations

import random
from pathlib import Path
from types import MappingProxyType

import pytest

from dnsrec.cli import main
from dnsrec.compose import compose
from dnsrec.config.run import RunConfig
from dnsrec.data import formats, presets
from dnsrec.data.presets import Layout, Loaded, Preset, Widths
from dnsrec.data.process import Filter
from dnsrec.run_result import RunResult


def toy_inter(users: int = 40, items: int = 30, seed: int = 0) -> str:
    """RecBole's atomic interaction file: a `name:type` header, then one tab-separated row per rating."""
    rng = random.Random(seed)
    rows = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    for user in range(users):
        for step in range(rng.randint(6, 14)):
            rows.append(f"u{user}\ti{rng.randrange(items)}\t{rng.randint(1, 5)}\t{1000 * user + step}")
    return "\n".join(rows) + "\n"


def read_toy(main_file: Path, companions: tuple[Path | None, ...]) -> Loaded:
    return formats.read_inter(main_file), None  # no item feature file


TOY = Preset(
    "toy",
    (Layout(("toy/toy.inter",), read_toy),),
    max_len=20,
    supernet=Widths(16, 32),
    pruning=(0.0, 0.5),
    baseline=Widths(16, 32),
    filtering=Filter(min_user=5, min_item=5),
)


def test_a_new_preset_composes_loads_and_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "toy").mkdir(parents=True)
    (data_dir / "toy" / "toy.inter").write_text(toy_inter())
    monkeypatch.setattr(presets, "PRESETS", MappingProxyType({**presets.PRESETS, TOY.name: TOY}))

    # the Hydra group `dataset` has it, with every key from the preset
    raw = compose("run", ["dataset=toy", "search.heads=2"])
    assert raw["dataset"] == {"name": "toy", "max_len": 20, "d": 16, "inner": 32, "pruning": [0.0, 0.5]}
    assert RunConfig.from_mapping(raw).space_for(n_items=30, max_len=20).hidden_widths == (16, 8)

    assert main(["data", "stats", "toy", "--data-dir", str(data_dir)]) == 0
    assert "toy" in capsys.readouterr().out

    run_dir = tmp_path / "run"
    overrides = ["model.layers=1", "model.heads=2", "train.max_epochs=1", "train.progress=false"]
    assert main(["train", "dataset=toy", f"data_dir={data_dir}", f"run_dir={run_dir}", *overrides]) == 0
    result = RunResult.read(run_dir / "result.json")
    assert result.dataset == "toy" and result.epochs == 1
    assert result.config["dataset"]["max_len"] == 20
    assert (result.config["model"]["d"], result.config["model"]["inner"]) == (16, 32)  # the preset's baseline
