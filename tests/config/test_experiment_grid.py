"""A user's own Hydra experiment file may declare a grid (`hydra.sweeper.params`): `dnsrec run -m
+experiment=NAME` expands it as Hydra's basic sweeper does, crossed with command-line sweeps. The repository
ships no such grid any more (the paper's live in `dnsrec reproduce`), so this test writes one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import dnsrec.compose
from dnsrec.compose import CONFIG_DIR, compose_grid

GRID = """# @package _global_
defaults:
  - override /dataset: gowalla-100
hydra:
  sweeper:
    params:
      gates.layers: 0,2
"""


def test_an_experiment_files_grid_is_expanded_and_crossed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    configs = tmp_path / "sweeps"
    shutil.copytree(CONFIG_DIR, configs)
    (configs / "experiment" / "my_grid.yaml").write_text(GRID)
    monkeypatch.setattr(dnsrec.compose, "CONFIG_DIR", configs)
    points = compose_grid("run", ["+experiment=my_grid", "lr=0.001,0.0005"])
    got = sorted((p["dataset"]["name"], p["gates"]["layers"], p["lr"]) for p in points)
    assert got == [("gowalla-100", g, lr) for g in (0, 2) for lr in (0.0005, 0.001)]
