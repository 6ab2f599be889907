"""Plain-text tables of runs for the terminal: what `dnsrec results list|show|best|compare` print.

Why plain: results are read in terminals over SSH and pasted into issues; aligned columns without
box-drawing survive both.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from dnsrec.config import dotted_keys
from dnsrec.results.views import ARCH_FIELDS, RUN_FIELDS, RunView

# What `list` shows besides the sort key: short headers for the key parameters and headline numbers.
LIST_COLUMNS = (
    ("id", "id"), ("status", "status"), ("stage", "stage"), ("method", "method"), ("dataset", "dataset"),
    ("sweep", "sweep"), ("trial", "trial"), ("lam", "lam"), ("gate_layers", "L_d"), ("lr", "lr"), ("seed", "seed"),
    ("flops", "FLOPs"), ("params", "params"), ("test/pop100/ndcg@10", "test pop100 ndcg@10"),
    ("test/full/ndcg@10", "test full ndcg@10"),
)  # fmt: skip


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.3e}"
    if isinstance(value, int):
        return f"{value / 1e6:.3f}M" if abs(value) >= 1e6 else str(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    if hasattr(value, "isoformat"):
        return str(value.isoformat(timespec="seconds"))
    return str(value)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [list(headers), *[[fmt(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def runs_table(runs: Sequence[RunView], extra: Sequence[str] = ()) -> str:
    columns = [*LIST_COLUMNS, *((name, name) for name in extra if name not in dict(LIST_COLUMNS))]
    return render_table([h for _, h in columns], [[run.value(name) for name, _ in columns] for run in runs])


def run_detail(run: RunView) -> str:
    """Everything about one run: fields, architecture, metrics by split, then the config."""
    lines = [render_table(["field", "value"], [[name, run.value(name)] for name in RUN_FIELDS])]
    if run.architecture:
        lines += ["", render_table(["architecture", "value"], [[n, run.architecture.get(n)] for n in ARCH_FIELDS])]
    if run.metrics:
        splits = sorted({name.split("/")[0] for name in run.metrics})
        names = sorted({name.partition("/")[2] for name in run.metrics})
        rows = [[n, *[run.metrics.get(f"{s}/{n}") for s in splits]] for n in names]
        lines += ["", render_table(["metric", *splits], rows)]
    lines += ["", "config: " + json.dumps(run.config, sort_keys=True)]
    return "\n".join(lines)


def comparison_rows(runs: Sequence[RunView]) -> list[tuple[str, list[Any]]]:
    """Side by side: identity, FLOPs and parameters, every metric, then the config keys that differ."""
    always = ["status", "stage", "method", "dataset", "sweep", "trial", "flops", "scoring_flops", "params"]
    always += ["depth", "hidden", "decision_width_p", "decision_depth_q", "decision_settled_epochs"]
    rows = [(name, [run.value(name) for run in runs]) for name in always]
    metrics = sorted({name for run in runs for name in run.metrics})
    rows += [(name, [run.metrics.get(name) for run in runs]) for name in metrics]
    configs = [dotted_keys(run.config) for run in runs]
    for key in sorted({k for c in configs for k in c}):
        values = [c.get(key) for c in configs]
        if any(v != values[0] for v in values):
            rows.append((f"config.{key}", values))
    return rows
