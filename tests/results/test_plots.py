"""Plots drawn with matplotlib: each command writes a valid PNG, and the figure holds exactly the plotted
points (read back from matplotlib's artists, not from pixels)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest

from dnsrec.cli import main
from dnsrec.results import open_store
from dnsrec.results.plot import LambdaPoint, Point, curves_figure, lambda_figure, pareto_figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_valid_png(path: Path) -> tuple[int, int]:
    """The file is a PNG that decodes to an image of some size; (height, width)."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = matplotlib.image.imread(path, format="png")
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 300
    return pixels.shape[0], pixels.shape[1]


def xy(line: Any) -> list[float]:
    """A line's points, flattened (x0, y0, x1, y1, ...) for pytest.approx."""
    return [float(v) for pair in line.get_xydata() for v in pair]


def flat(pairs: list[list[float]]) -> list[float]:
    return [float(v) for pair in pairs for v in pair]


def scatter_points(ax: Any) -> dict[str, list[tuple[float, float]]]:
    """{legend label: [(x, y), ...]} of the axes' scatter collections."""
    return {c.get_label(): [tuple(map(float, xy)) for xy in c.get_offsets()] for c in ax.collections}


def test_pareto_figure_plots_every_run_and_the_front(tmp_path: Path) -> None:
    points = [
        Point(1e4, 0.20, True, "1"),
        Point(1e5, 0.30, True, "2"),
        Point(5e5, 0.25, False),
        Point(1e6, 0.35, True, "3"),
        Point(2e6, 0.10, False),
    ]
    fig = pareto_figure(tmp_path / "p.png", points, "valid/pop100/ndcg@10", "flops")
    assert_valid_png(tmp_path / "p.png")
    (ax,) = fig.axes
    plotted = scatter_points(ax)
    assert plotted["other runs"] == [(0.5, 0.25), (2.0, 0.10)]  # MFLOPs
    assert plotted["Pareto front (3 of 5 runs)"] == [(0.01, 0.20), (0.1, 0.30), (1.0, 0.35)]
    assert ax.get_xscale() == "log"  # costs span 200x
    assert "MFLOPs" in ax.get_xlabel() and ax.get_ylabel() == "validation NDCG@10 (pop100)"
    empty = pareto_figure(tmp_path / "empty.png", [], "valid/pop100/ndcg@10", "flops")  # still a valid image
    assert_valid_png(tmp_path / "empty.png") and not any(len(c.get_offsets()) for c in empty.axes[0].collections)


def test_cli_pareto_png(tmp_path: Path, make_result: Any, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    store = open_store(db)
    for i, (ndcg, flops) in enumerate([(0.2, 1000), (0.3, 5000), (0.25, 8000)]):
        store.record(make_result(ndcg=ndcg, flops=flops), tmp_path / f"r{i}")
    store.close()
    assert main(["results", "pareto", "--db", db, "--png", str(tmp_path / "front.png")]) == 0
    assert f"wrote {tmp_path / 'front.png'}" in capsys.readouterr().out
    assert_valid_png(tmp_path / "front.png")


def test_lambda_figure_plots_each_run_and_the_mean_per_lambda(tmp_path: Path) -> None:
    points = [
        LambdaPoint(0.01, 0.30, 0.28, 2e6),
        LambdaPoint(0.01, 0.32, 0.30, 4e6),
        LambdaPoint(0.1, 0.25, 0.24, 1e6),
        LambdaPoint(1.0, 0.20, None, 5e5),
    ]
    fig = lambda_figure(tmp_path / "l.png", points)
    assert_valid_png(tmp_path / "l.png")
    left, right = fig.axes
    lines = {line.get_label(): xy(line) for ax in (left, right) for line in ax.lines}
    assert lines["validation NDCG@10 (mean)"] == pytest.approx([0.01, 0.31, 0.1, 0.25, 1.0, 0.20])
    assert lines["test NDCG@10 (mean)"] == pytest.approx([0.01, 0.29, 0.1, 0.24])  # no test value at 1.0
    assert lines["FLOPs (mean)"] == pytest.approx([0.01, 3.0, 0.1, 1.0, 1.0, 0.5])
    assert len(scatter_points(left)["_validation NDCG@10 runs"]) == 4
    assert left.get_xscale() == "log" and "MFLOPs" in right.get_ylabel()


def test_curves_of_a_real_run(real_run: tuple[Path, str], tmp_path: Path) -> None:
    run_dir, db = real_run
    result = json.loads((run_dir / "result.json").read_text())
    history, trajectory = result["history"], result["search"]["trajectory"]
    # the command, by run directory and by id, and the figure it draws
    assert main(["results", "plot", str(run_dir), "--curves", "--png", str(tmp_path / "c.png")]) == 0
    assert_valid_png(tmp_path / "c.png")
    assert main(["results", "plot", "1", "--curves", "--db", db, "--png", str(tmp_path / "by-id.png")]) == 0
    assert_valid_png(tmp_path / "by-id.png")
    fig = curves_figure(tmp_path / "again.png", result)
    loss, ndcg, probs, flops = fig.axes
    by_label = {line.get_label(): xy(line) for line in loss.lines}
    assert by_label["retraining (train CE)"] == pytest.approx(flat([[e["epoch"], e["loss"]] for e in history]))
    assert by_label["search (train CE)"] == pytest.approx(flat([[e["epoch"], e["loss"]] for e in trajectory]))
    valid = {line.get_label(): xy(line) for line in ndcg.lines}
    assert valid["retraining"] == pytest.approx(flat([[e["epoch"], e["valid"]["pop100/ndcg@10"]] for e in history]))
    layers, candidates, depths = len(trajectory[0]["p"]), len(trajectory[0]["p"][0]), len(trajectory[0]["q"])
    assert len(probs.lines) == layers * candidates + depths
    assert all(len(line.get_xdata()) == len(trajectory) for line in probs.lines)
    expected = [float(v) for v in {line.get_label(): line.get_ydata() for line in flops.lines}["expected"]]
    assert expected == pytest.approx([e["expected_flops"] / 1e6 for e in trajectory])
    assert loss.get_xlabel() == "epoch" and "nats" in loss.get_ylabel() and "MFLOPs" in flops.get_ylabel()


def test_plot_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["results", "plot", "--curves", "--db", f"sqlite:///{tmp_path / 'r.db'}"]) == 2
    assert main(["results", "plot", str(tmp_path), "--curves", "--db", f"sqlite:///{tmp_path / 'r.db'}"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "give the run" in err[0] and "result.json" in err[1]
