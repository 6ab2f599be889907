"""Figures of recorded runs, drawn with matplotlib (the `plot` extra; `make install` installs it) on the Agg
backend, so they render on nodes and login machines without a display.

    pareto_figure   quality (e.g. validation pop100 NDCG@10) against cost (FLOPs), the front in red
    lambda_figure   the paper's Figure 4: NDCG@10 and FLOPs of the searched models against lambda
    curves_figure   one run: training loss and validation NDCG@10 per epoch (search and retraining), and
                    the search's trajectory (width and depth probabilities from alpha and beta, expected
                    FLOPs)

Each writes a PNG and returns the matplotlib `Figure` (closed from pyplot's registry), whose artists hold
exactly the plotted data: tests read the points back from them. matplotlib (and with it numpy) is imported
only when a figure is drawn: `dnsrec.results` stays importable without them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dnsrec.errors import DNSRecError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

RED, GREY, BLUE, ORANGE = "#d62728", "#8c8c8c", "#1f77b4", "#ff7f0e"

# How a cost or field is labelled on an axis: (label, divisor, unit).
UNITS: dict[str, tuple[str, float, str]] = {
    "flops": ("FLOPs of one sequence through the layers", 1e6, "MFLOPs"),
    "total_flops": ("FLOPs of one sequence, layers + scoring", 1e6, "MFLOPs"),
    "scoring_flops": ("FLOPs of the scoring layer", 1e6, "MFLOPs"),
    "supernet_flops": ("FLOPs of the un-pruned supernet shape", 1e6, "MFLOPs"),
    "params": ("parameters", 1e6, "millions"),
    "supernet_params": ("parameters of the supernet shape", 1e6, "millions"),
    "peak_memory_mb": ("peak memory", 1.0, "MB"),
    "inference_memory_mb": ("inference memory", 1.0, "MB"),
    "inference_seconds": ("inference time", 1.0, "s"),
    "train_seconds": ("training time", 1.0, "s"),
    "search_seconds": ("search time", 1.0, "s"),
    "retrain_seconds": ("retraining time", 1.0, "s"),
    "seconds_per_epoch": ("time per epoch", 1.0, "s"),
}


class PlotUnavailable(DNSRecError):
    """matplotlib is not installed."""


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as e:
        raise PlotUnavailable(
            "plots need matplotlib: `make install` installs it, or `pip install 'dnsrec[plot]'`"
        ) from e
    matplotlib.use("Agg")  # files only: no display on nodes
    import matplotlib.pyplot as plt

    return plt


def axis_label(name: str) -> tuple[str, float]:
    """(label with unit, divisor) of a field such as flops; metrics are shown as they are named."""
    if name in UNITS:
        label, scale, unit = UNITS[name]
        return f"{label} ({unit})", scale
    return metric_label(name), 1.0


def metric_label(name: str) -> str:
    """`valid/pop100/ndcg@10` -> `validation NDCG@10 (pop100)`: pop100 ranks the target among 100
    popularity-sampled negatives, full among every item."""
    parts = name.split("/")
    if len(parts) != 3:
        return name
    split, protocol, metric = parts
    where = {"valid": "validation", "test": "test"}.get(split, split)
    return f"{where} {metric.upper()} ({protocol})"


def _save(fig: Figure, path: Path) -> Figure:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
    return fig


@dataclass(frozen=True)
class Point:
    """One run on a Pareto plot: its cost, its (selection) quality, whether it is on the front."""

    cost: float
    quality: float
    on_front: bool
    label: str = ""  # the run id, written beside front points


def pareto_figure(path: Path, points: Sequence[Point], quality_name: str, cost_name: str) -> Figure:
    """Every run as a grey dot, the front as red dots joined by a step line; log cost axis when the costs span
    more than a factor of 20 (pruned models are often 10-100x cheaper than the supernet)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    xlabel, scale = axis_label(cost_name)
    ylabel, _ = axis_label(quality_name)
    rest = [p for p in points if not p.on_front]
    front = sorted((p for p in points if p.on_front), key=lambda p: p.cost)
    ax.scatter(
        [p.cost / scale for p in rest], [p.quality for p in rest], s=22, color=GREY, label="other runs", zorder=2
    )
    ax.step(
        [p.cost / scale for p in front],
        [p.quality for p in front],
        where="post",
        color=RED,
        linewidth=1,
        zorder=3,
        label="_front line",
    )
    ax.scatter(
        [p.cost / scale for p in front],
        [p.quality for p in front],
        s=36,
        color=RED,
        label=f"Pareto front ({len(front)} of {len(points)} runs)",
        zorder=4,
    )
    labels: dict[tuple[float, float], list[str]] = {}  # runs at the same spot share one label
    for p in front:
        if p.label:
            labels.setdefault((p.cost / scale, p.quality), []).append(p.label)
    for xy, names in labels.items():
        text = f"run{'s' if len(names) > 1 else ''} {', '.join(names)}"
        ax.annotate(text, xy, textcoords="offset points", xytext=(5, 4), fontsize=8)
    costs = [p.cost for p in points if p.cost > 0]
    if costs and len(costs) == len(points) and max(costs) / min(costs) > 20:
        ax.set_xscale("log")
        xlabel += ", log scale"
    if not points:
        ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center", va="center")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{quality_name} (higher is better) vs {cost_name} (lower is better)")
    ax.grid(True, alpha=0.3)
    if points:
        ax.legend(loc="best")
    ax.margins(0.08)
    return _save(fig, path)


@dataclass(frozen=True)
class LambdaPoint:
    lam: float
    valid: float | None  # validation NDCG@10 of the searched and retrained model
    test: float | None
    flops: float | None


def lambda_figure(
    path: Path,
    points: Sequence[LambdaPoint],
    metric: str = "pop100/ndcg@10",
    xlabel: str = "lambda (weight of the FLOPs term in the search loss)",
    title: str = "lambda trade-off",
) -> Figure:
    """The paper's Figure 4: NDCG@10 (validation and test, left axis) and the searched model's FLOPs (right
    axis) against lambda on a log axis; each run a marker, the mean per lambda a line. Any other swept key
    (a point's `lam` is then that key's value: the learning-rate study) is drawn the same way with its own
    `xlabel` and `title`; with no points the figure says so."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    right = ax.twinx()
    lams = sorted({p.lam for p in points})

    def series(axes: Axes, values: Mapping[float, list[float]], color: str, marker: str, name: str) -> None:
        xs = [lam for lam in lams for _ in values.get(lam, [])]
        ys = [v for lam in lams for v in values.get(lam, [])]
        axes.scatter(xs, ys, color=color, marker=marker, s=20, alpha=0.6, label=f"_{name} runs")
        means = [(lam, sum(values[lam]) / len(values[lam])) for lam in lams if values.get(lam)]
        axes.plot([m[0] for m in means], [m[1] for m in means], color=color, marker=marker, label=f"{name} (mean)")

    def collect(attr: str, scale: float = 1.0) -> dict[float, list[float]]:
        out: dict[float, list[float]] = {}
        for p in points:
            value = getattr(p, attr)
            if value is not None:
                out.setdefault(p.lam, []).append(value / scale)
        return out

    what = metric.split("/")[-1].upper()
    series(ax, collect("valid"), BLUE, "o", f"validation {what}")
    series(ax, collect("test"), ORANGE, "s", f"test {what}")
    series(right, collect("flops", 1e6), RED, "^", "FLOPs")
    if lams:  # an empty log axis cannot be drawn
        ax.set_xscale("log")
    ax.set_xlabel(f"{xlabel}, log scale")
    ax.set_ylabel(f"{what} ({metric.split('/')[0]})")
    right.set_ylabel("FLOPs of the searched model (MFLOPs)")
    ax.set_title(f"{title}: {len(points)} runs at {len(lams)} values")
    ax.grid(True, alpha=0.3)
    handles = [h for axes in (ax, right) for h in axes.get_legend_handles_labels()[0]]
    labels = [lab for axes in (ax, right) for lab in axes.get_legend_handles_labels()[1]]
    ax.legend(handles, labels, loc="best", fontsize=8)
    if not points:
        ax.text(0.5, 0.5, "no complete runs", transform=ax.transAxes, ha="center", va="center")
    return _save(fig, path)


def curves_figure(path: Path, result: Mapping[str, Any], metric: str = "pop100/ndcg@10") -> Figure:
    """One run's curves from its result.json: (1) training loss per epoch, (2) validation `metric` per epoch,
    for the search (if any) and the final training; for a search also (3) width probabilities
    p = softmax(alpha / tau) of each layer's candidates and depth probabilities q = softmax(beta / tau), and
    (4) the expected FLOPs under them, beside the derived model's and the supernet shape's FLOPs."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    history = list(result.get("history") or [])
    trajectory = list((result.get("search") or {}).get("trajectory") or [])
    rows = 2 if trajectory else 1
    fig, axes = plt.subplots(rows, 2, figsize=(11, 4.2 * rows), layout="constrained", squeeze=False)
    stage = "retraining" if trajectory else "training"
    loss_ax, metric_ax = axes[0]

    def plot_epochs(ax: Axes, entries: list[dict[str, Any]], get: Any, name: str, color: str, style: str) -> None:
        pairs = [(e["epoch"], get(e)) for e in entries if get(e) is not None]
        ax.plot([p[0] for p in pairs], [p[1] for p in pairs], style, color=color, label=name, markersize=4)

    plot_epochs(loss_ax, history, lambda e: e.get("loss"), f"{stage} (train CE)", BLUE, "o-")
    if trajectory:
        plot_epochs(loss_ax, trajectory, lambda e: e.get("loss"), "search (train CE)", ORANGE, "s--")
    loss_ax.set_xlabel("epoch")
    loss_ax.set_ylabel("training loss (cross-entropy over all items, nats)")
    loss_ax.set_title("training loss per epoch")

    def valid(e: dict[str, Any]) -> float | None:
        return (e.get("valid") or {}).get(metric)

    plot_epochs(metric_ax, history, valid, stage, BLUE, "o-")
    if trajectory:
        plot_epochs(metric_ax, trajectory, valid, "search (supernet)", ORANGE, "s--")
    best = result.get("best_epoch")
    if best:
        metric_ax.axvline(best, color=GREY, linestyle=":", label=f"best {stage} epoch ({best})")
    metric_ax.set_xlabel("epoch")
    metric_ax.set_ylabel(metric_label(f"valid/{metric}"))
    metric_ax.set_title(f"validation {metric.split('/')[-1].upper()} per epoch")

    if trajectory:
        prob_ax, flops_ax = axes[1]
        epochs = [e["epoch"] for e in trajectory]
        pruning = list((result.get("config") or {}).get("dataset", {}).get("pruning") or [])
        for layer, layer_probs in enumerate(zip(*(e["p"] for e in trajectory), strict=True)):
            for c, series_ in enumerate(zip(*layer_probs, strict=True)):
                width = f"pruning {pruning[c]:.0%}" if len(pruning) == len(layer_probs[0]) else f"candidate {c}"
                prob_ax.plot(epochs, series_, "-", label=f"layer {layer + 1}, {width}", linewidth=1)
        for j, series_ in enumerate(zip(*(e["q"] for e in trajectory), strict=True)):
            prob_ax.plot(epochs, series_, "k--" if j == 0 else "--", label=f"depth {j + 1} (q)", linewidth=1.5)
        prob_ax.set_xlabel("search epoch")
        prob_ax.set_ylabel("probability")
        prob_ax.set_ylim(-0.02, 1.02)
        prob_ax.set_title("search: widths p = softmax(alpha/tau), depth q = softmax(beta/tau)")
        prob_ax.legend(fontsize=7, ncol=2)

        flops_ax.plot(epochs, [e["expected_flops"] / 1e6 for e in trajectory], "o-", color=RED, label="expected")
        flops = result.get("flops") or {}
        if flops.get("model"):
            flops_ax.axhline(flops["model"] / 1e6, color=BLUE, linestyle="--", label="derived model")
        if flops.get("supernet"):
            flops_ax.axhline(flops["supernet"] / 1e6, color=GREY, linestyle=":", label="un-pruned supernet shape")
        decision = (result.get("search") or {}).get("best_epoch")
        if decision:
            flops_ax.axvline(decision, color=GREY, linestyle="-.", label=f"decision epoch ({decision})")
        flops_ax.set_xlabel("search epoch")
        flops_ax.set_ylabel("FLOPs of one sequence (MFLOPs)")
        flops_ax.set_title("search: expected FLOPs under p and q")
        flops_ax.legend(fontsize=8)
    for ax in axes.flat:
        ax.grid(True, alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_ax.legend(fontsize=8)
    metric_ax.legend(fontsize=8)
    name = result.get("dataset", {}).get("name") if isinstance(result.get("dataset"), dict) else result.get("dataset")
    fig.suptitle(f"dnsrec {result.get('stage', 'run')} on {name}")
    return _save(fig, path)
