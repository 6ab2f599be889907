"""Figures (figure4, lr) are PNGs beside the report, drawn with or without runs; the lr report says whether
each learning rate searched the default's architecture, seed by seed."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_support import complete, missing, run

from dnsrec.reproduce.render import markdown, write
from dnsrec.reproduce.report import build
from dnsrec.reproduce.tables import load_paper, load_table

pytest.importorskip("matplotlib")


def _arch(view, depth: int):  # type: ignore[no-untyped-def]
    view.architecture = {"depth": depth, "hidden": [64] * depth, "inner_widths": [128] * depth, "gate_layers": 2,
                         "flops": 1e6 * depth}  # fmt: skip
    return view


@pytest.mark.parametrize("name", ["lr", "figure4"])
def test_a_figure_is_drawn_with_and_without_runs(tmp_path: Path, name: str) -> None:
    spec = load_table(name)
    results = []
    for i, row in enumerate(spec.rows):
        for seed in (0, 1):
            depth = 2 if row.label == spec.ours or seed == 0 else 3
            results.append(complete(row, seed, _arch(run(10 * i + seed, 0.3 + 0.01 * i, 1.0), depth)))
    report = build(spec, "ml-100k", [0, 1], results, load_paper(), f"dnsrec reproduce {name}", "abc")
    written = write(report, tmp_path / "with")
    assert (tmp_path / "with" / f"ml-100k-{name}.png") in written
    md = markdown(report)
    assert "depth 2" in md
    if name == "lr":  # seed 0 searched the default's architecture at every rate, seed 1 did not
        assert "- xi = 0.01: 1 of 2 seeds with both runs" in md and "- xi = 0.001: 2 of 2 seeds" in md
    empty = build(spec, "ml-100k", [0], [missing(r, 0, "not run", "") for r in spec.rows], load_paper(), "c", "")
    assert (tmp_path / "empty" / f"ml-100k-{name}.png") in write(empty, tmp_path / "empty")
