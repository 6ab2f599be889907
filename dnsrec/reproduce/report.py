"""The report of one table on one dataset: Markdown and CSV (and a PNG for a figure), from recorded runs.

Each cell is our mean ± sample sd over the seeds that have a COMPLETE run, beside the paper's printed value
for the same cell where it has one. Every row is compared with the table's `ours` row (of its group) by a
two-sided Welch t-test per column (`*`: p < 0.05) and by the paper's relative improvement. A point that
could not run (a config key that does not exist yet), failed or was not run is marked with its reason; it
never stops the report and is never filled in.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnsrec.reproduce import stats
from dnsrec.reproduce.points import Point
from dnsrec.reproduce.tables import PAPER_DATASETS, Column, PaperValues, Row, TableSpec, paper_number
from dnsrec.results import RunView


@dataclass(frozen=True)
class PointResult:
    point: Point
    run: RunView | None  # the COMPLETE recorded run of this point, if any
    status: str  # complete, unavailable, failed, not run
    reason: str = ""


@dataclass
class RowReport:
    row: Row
    results: list[PointResult]
    values: dict[str, list[float]] = field(default_factory=dict)  # column -> one value per complete seed
    seeds_of: dict[str, list[int]] = field(default_factory=dict)  # column -> the seeds behind `values`
    summaries: dict[str, stats.Summary] = field(default_factory=dict)
    p: dict[str, float | None] = field(default_factory=dict)  # column -> Welch p against `ours`
    gain: dict[str, float | None] = field(default_factory=dict)  # column -> improvement of ours over this row
    text: dict[str, str] = field(default_factory=dict)  # non-numeric columns (architecture)

    @property
    def complete(self) -> list[PointResult]:
        return [r for r in self.results if r.status == "complete"]

    @property
    def modes(self) -> str:
        """The training formulation (`train.mode`) of the runs behind the numbers."""
        found = sorted({_mode(r.run) for r in self.complete if r.run is not None})
        return ", ".join(found) or "-"


@dataclass
class Report:
    spec: TableSpec
    dataset: str
    seeds: list[int]
    rows: list[RowReport]
    paper: PaperValues
    command: str
    commit: str
    written: str = ""  # when

    @property
    def paper_dataset(self) -> str | None:
        return PAPER_DATASETS.get(self.dataset, (None, ""))[0]

    @property
    def paper_note(self) -> str:
        return PAPER_DATASETS.get(self.dataset, ("", ""))[1]

    def paper_value(self, row: Row | str, column: str) -> str | None:
        key = row.key if isinstance(row, Row) else row
        return self.paper.get(self.spec.name, self.paper_dataset, key, column)

    def ours(self, group: str) -> RowReport | None:
        return next((r for r in self.rows if r.row.group == group and r.row.label == self.spec.ours), None)


def column_value(column: Column, run: RunView) -> float | str | None:
    """What a column shows of one run (already scaled), or None where the run does not have it."""
    if column.unavailable:
        return None
    if column.value == ("architecture",):
        return architecture_text(run)
    parts = [run.metrics.get(v) if "/" in v else run.value(v) for v in column.value]
    if len(parts) > 1 or column.missing_is_zero:  # a sum of fields: one a stage lacks counts 0
        if all(x is None for x in parts) and not column.missing_is_zero:
            return None
        return sum(float(x) for x in parts if x is not None) * column.scale
    return None if parts[0] is None else float(parts[0]) * column.scale


def architecture_text(run: RunView) -> str | None:
    a = run.architecture
    if not a or not a.get("hidden"):
        return None
    return f"depth {a.get('depth')}, d' {a.get('hidden')}, D' {a.get('inner_widths')}, L_d {a.get('gate_layers')}"


def build(
    spec: TableSpec,
    dataset: str,
    seeds: Sequence[int],
    results: Sequence[PointResult],
    paper: PaperValues,
    command: str,
    commit: str,
) -> Report:
    rows = []
    for row in spec.rows:
        mine = [r for r in results if r.point.row == row]
        rr = RowReport(row, mine)
        for col in spec.columns:
            texts: dict[str, list[int]] = {}
            for r in rr.complete:
                assert r.run is not None
                v = column_value(col, r.run)
                if isinstance(v, float):
                    rr.values.setdefault(col.name, []).append(v)
                    rr.seeds_of.setdefault(col.name, []).append(r.point.seed)
                elif isinstance(v, str):
                    texts.setdefault(v, []).append(r.point.seed)
            if texts:  # e.g. the searched architecture: each distinct one with its seeds
                rr.text[col.name] = "; ".join(f"{t} (seed {', '.join(map(str, s))})" for t, s in texts.items())
            rr.summaries[col.name] = stats.summary(rr.values.get(col.name, []))
        rows.append(rr)
    report = Report(spec, dataset, list(seeds), rows, paper, command, commit)
    for rr in rows:
        ours = report.ours(rr.row.group)
        if ours is None or ours is rr:
            continue
        for col in spec.columns:
            if not col.numeric:
                continue
            rr.p[col.name] = stats.welch_p(ours.values.get(col.name, []), rr.values.get(col.name, []))
            rr.gain[col.name] = stats.improvement(
                ours.summaries[col.name].mean, rr.summaries[col.name].mean, col.better
            )
    return report


# -- the improvement row ---------------------------------------------------------------------------------


def improvement_cells(report: Report, group: str, column: Column) -> tuple[str, str]:
    """(ours, paper) text of the Imprv. row of a group and column: min~max over the baselines ("range"), or
    against one named row; the paper's printed Imprv. where it has one, else computed from its values."""
    spec = report.spec
    if not spec.improvement or not column.numeric:
        return "", ""
    members = [r for r in report.rows if r.row.group == group and r.row.label != spec.ours]
    if spec.improvement != "range":
        members = [r for r in members if r.row.label == spec.improvement]
    ours_text = _gain_text([r.gain.get(column.name) for r in members])
    prefix = f"{group}/" if group else ""
    printed = report.paper_value(prefix + "Imprv.", column.name)
    if printed is not None:
        return ours_text, printed
    ours_paper = paper_number(report.paper_value(prefix + spec.ours, column.name))
    gains = [
        stats.improvement(ours_paper, paper_number(report.paper_value(r.row, column.name)), column.better)
        for r in members
    ]
    paper_text = _gain_text(gains)
    return ours_text, f"{paper_text} (from its values)" if paper_text != "-" else "-"


def _gain_text(gains: Sequence[float | None]) -> str:
    found = stats.improvement_range(gains)
    if found is None:
        return "-"
    lo, hi = found
    return (
        stats.percent(lo)
        if len([g for g in gains if g is not None]) == 1
        else f"{stats.percent(lo)}~{stats.percent(hi)}"
    )


# -- text of one cell ------------------------------------------------------------------------------------


def cell_text(report: Report, rr: RowReport, column: Column) -> str:
    if column.unavailable:
        return "unavailable"
    if not column.numeric:
        return rr.text.get(column.name, _missing_text(rr))
    s = rr.summaries[column.name]
    if s.mean is None:
        return _missing_text(rr)
    text = _number(s.mean) + ("" if s.sd is None else f" ± {_number(s.sd)}")
    if stats.significant(rr.p.get(column.name)):
        text += "*"
    if s.n < len(report.seeds):
        text += f" ({s.n}/{len(report.seeds)} seeds)"
    return text


def _missing_text(rr: RowReport) -> str:
    statuses = {r.status for r in rr.results}
    if statuses == {"unavailable"}:
        return "unavailable"
    return "missing"


def _number(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.4f}"


def _p_text(p: float | None) -> str:
    return "n/a" if p is None else (f"{p:.3g}" + (" *" if stats.significant(p) else ""))


def _mode(run: RunView | None) -> str:
    train = (run.config.get("train") if run is not None else None) or {}
    return str(train.get("mode", "window (not recorded: the default then)"))


# -- Markdown --------------------------------------------------------------------------------------------


def markdown(report: Report) -> str:
    spec, out = report.spec, io.StringIO()
    w = out.write
    w(f"# {spec.paper}: {spec.title} — `{report.dataset}`\n\n")
    source = f"sweeps/experiment/reproduce/{spec.name}.yaml"
    w(f"Written by `dnsrec reproduce {spec.name}` (table definition `{source}`).\n\n")
    w(f"- Command: `{report.command}`\n")
    w(f"- Code: git commit `{report.commit or 'unknown'}`; the runs' own commits: {_runs_commits(report)}\n")
    w(f"- Seeds: {', '.join(map(str, report.seeds))}. Each cell: mean ± sample standard deviation (numpy, ddof=1) "
      f"over the seeds with a complete run; `(k/n seeds)` where only k of them have one.\n")  # fmt: skip
    w(f"- Training formulation (`train.mode`): {_modes(report)} (per row in the table's last column).\n")
    w(f"- Devices: {_devices(report)}. Cost: {cost_text(report)}.\n")
    if spec.columns and any(c.numeric for c in spec.columns):
        w(f"- `*`: a two-sided Welch t-test (scipy.stats.ttest_ind, equal_var=False) of the row against "
          f"**{spec.ours}**{' of its group' if spec.groups() != [''] else ''} gives p < 0.05 "
          "(p-values below; n/a with fewer than two seeds on a side).\n")  # fmt: skip
    if spec.improvement:
        what = "min~max over the baselines" if spec.improvement == "range" else f"against {spec.improvement}"
        w(
            f"- Imprv.: the paper's relative improvement of **{spec.ours}**, {what}: (ours - baseline) / "
            "baseline for accuracy, (baseline - ours) / baseline for time, memory and FLOPs; positive = ours better.\n"
        )
    pd = report.paper_dataset
    if pd is None:
        w(f"- Paper column: the paper has no dataset like `{report.dataset}`; no paper values are shown.\n")
    else:
        note = f" ({report.paper_note})" if report.paper_note else ""
        has_any = any(k[0] == spec.name and k[1] == pd for k in report.paper.cells)
        shown = f"the paper's {spec.paper}, {pd}{note}" if has_any else f"none: {spec.paper} has no {pd} values"
        w(f"- Paper column: {shown}. Values as printed (`*` there is the paper's own mark).\n")
    notes = [f"{r.label}: {r.note}" for r in spec.rows if r.note]
    for n in dict.fromkeys(notes):
        w(f"- {n}\n")
    w("\n")
    for group in spec.groups():
        if group:
            w(f"## {group}\n\n")
        header = ["row"]
        for c in spec.columns:
            header += [c.name, "paper"]
        header += ["train.mode"]
        w("| " + " | ".join(header) + " |\n")
        w("|" + "---|" * len(header) + "\n")
        for rr in (r for r in report.rows if r.row.group == group):
            cells = [rr.row.label]
            for c in spec.columns:
                cells += [cell_text(report, rr, c), report.paper_value(rr.row, c.name) or "-"]
            cells.append(rr.modes)
            w("| " + " | ".join(_md(x) for x in cells) + " |\n")
        if spec.improvement:
            cells = ["Imprv."]
            for c in spec.columns:
                cells += list(improvement_cells(report, group, c)) if c.numeric else ["", ""]
            cells.append("")
            w("| " + " | ".join(_md(x) for x in cells) + " |\n")
        w("\n")
    unavailable_cols = [c for c in spec.columns if c.unavailable]
    for c in unavailable_cols:
        w(f"Column *{c.name}*: unavailable: {c.unavailable}.\n\n")
    if spec.same_architecture:
        w(same_architecture_md(report))
    w(p_values_md(report))
    w(missing_md(report))
    w(runs_md(report))
    return out.getvalue()


def p_values_md(report: Report) -> str:
    spec = report.spec
    cols = [c for c in spec.columns if c.numeric]
    rows = [r for r in report.rows if r.row.label != spec.ours]
    if not cols or not rows:
        return ""
    lines = [
        f"## Welch t-test p-values against {spec.ours}\n\n",
        "| row | " + " | ".join(c.name for c in cols) + " |\n",
    ]
    lines.append("|" + "---|" * (len(cols) + 1) + "\n")
    for rr in rows:
        lines.append(f"| {_md(rr.row.key)} | " + " | ".join(_p_text(rr.p.get(c.name)) for c in cols) + " |\n")
    return "".join(lines) + "\n"


def same_architecture_md(report: Report) -> str:
    """Per row: does each seed's searched architecture equal the `ours` row's of the same seed?"""
    lines = [f"## Same searched architecture as {report.spec.ours} (seed by seed)\n\n"]
    for rr in report.rows:
        ours = report.ours(rr.row.group)
        if ours is None:
            continue
        mine = {r.point.seed: architecture_text(r.run) for r in rr.complete if r.run}
        theirs = {r.point.seed: architecture_text(r.run) for r in ours.complete if r.run}
        both = sorted(set(mine) & set(theirs))
        same = sum(mine[s] == theirs[s] for s in both)
        lines.append(f"- {_md(rr.row.label)}: {same} of {len(both)} seeds with both runs\n")
    return "".join(lines) + "\n"


def missing_md(report: Report) -> str:
    missing = [r for rr in report.rows for r in rr.results if r.status != "complete"]
    if not missing:
        return ""
    lines = ["## Missing points (marked, never filled in)\n\n"]
    by_reason: dict[tuple[str, str, str], list[int]] = {}
    for r in missing:
        by_reason.setdefault((r.point.row.key, r.status, r.reason), []).append(r.point.seed)
    for (key, status, reason), seeds in by_reason.items():
        lines.append(
            f"- {_md(key)}, seed {', '.join(map(str, seeds))}: {status}" + (f": {_md(reason)}" if reason else "") + "\n"
        )
    return "".join(lines) + "\n"


def runs_md(report: Report) -> str:
    lines = [
        "## Runs\n\n",
        "| row | seed | run id | train.mode | device | search + retrain s | commit | run directory |\n",
        "|---|---|---|---|---|---|---|---|\n",
    ]
    for rr in report.rows:
        for r in rr.complete:
            v = r.run
            assert v is not None
            commit = (v.git_commit or "")[:12]
            cost = f"{run_seconds(v):.0f}"
            cells = [_md(rr.row.key), r.point.seed, v.id, _mode(v), _md(v.device or "-"), cost, commit, v.run_dir]
            lines.append("| " + " | ".join(map(str, cells)) + " |\n")
    return "".join(lines) + "\n"


def run_seconds(run: RunView) -> float:
    """Wall seconds of a run's search and retraining (or training), evaluation epochs included."""
    return float(run.search_seconds or 0.0) + float(run.retrain_seconds or 0.0)


def cost_text(report: Report) -> str:
    """The wall time of the distinct runs behind the report: what a user plans a cluster run by."""
    runs = {r.run.id: r.run for rr in report.rows for r in rr.complete if r.run is not None}
    hours = sum(run_seconds(v) for v in runs.values()) / 3600
    return f"{hours:.2f} h of search + retraining over {len(runs)} distinct runs (one process each)"


def _runs_commits(report: Report) -> str:
    found = sorted({(r.run.git_commit or "?")[:12] for rr in report.rows for r in rr.complete if r.run})
    return ", ".join(f"`{c}`" for c in found) or "(no runs)"


def _devices(report: Report) -> str:
    found = sorted({r.run.device or "?" for rr in report.rows for r in rr.complete if r.run})
    return ", ".join(found) or "(no runs)"


def _modes(report: Report) -> str:
    found = sorted({_mode(r.run) for rr in report.rows for r in rr.complete if r.run})
    return ", ".join(found) or "(no runs)"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


# -- CSV -------------------------------------------------------------------------------------------------

CSV_FIELDS = (
    "table", "dataset", "group", "row", "column", "n", "seeds", "mean", "sd", "values", "paper", "p_welch",
    "significant", "improvement", "status", "note", "train_mode", "command", "commit",
)  # fmt: skip


def csv_text(report: Report) -> str:
    """One line per row and column (long form), plus the Imprv. lines: what a script reads."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    base = {"table": report.spec.name, "dataset": report.dataset, "command": report.command, "commit": report.commit}
    for rr in report.rows:
        reasons = "; ".join(
            dict.fromkeys(f"seed {r.point.seed} {r.status}: {r.reason}" for r in rr.results if r.status != "complete")
        )
        for c in report.spec.columns:
            s = rr.summaries.get(c.name, stats.Summary(0, None, None))
            status = (
                "unavailable"
                if c.unavailable
                else ("complete" if s.n == len(report.seeds) else _missing_text(rr) if s.n == 0 else "partial")
            )
            if not c.numeric and not c.unavailable:
                status = "complete" if rr.text.get(c.name) else _missing_text(rr)
            writer.writerow(
                base
                | {
                    "group": rr.row.group,
                    "row": rr.row.label,
                    "column": c.name,
                    "n": s.n,
                    "seeds": " ".join(map(str, rr.seeds_of.get(c.name, []))),
                    "mean": "" if s.mean is None else repr(s.mean) if c.numeric else rr.text.get(c.name, ""),
                    "sd": "" if s.sd is None else repr(s.sd),
                    "values": " ".join(repr(v) for v in rr.values.get(c.name, [])),
                    "paper": report.paper_value(rr.row, c.name) or "",
                    "p_welch": "" if rr.p.get(c.name) is None else repr(rr.p[c.name]),
                    "significant": str(stats.significant(rr.p.get(c.name))).lower() if c.name in rr.p else "",
                    "improvement": "" if rr.gain.get(c.name) is None else repr(rr.gain[c.name]),
                    "status": status,
                    "note": c.unavailable or reasons,
                    "train_mode": rr.modes,
                }
            )
    if report.spec.improvement:
        for group in report.spec.groups():
            for c in report.spec.columns:
                if not c.numeric:
                    continue
                ours, paper = improvement_cells(report, group, c)
                writer.writerow(
                    base | {"group": group, "row": "Imprv.", "column": c.name, "improvement": ours, "paper": paper}
                )
    return out.getvalue()


# -- figures ---------------------------------------------------------------------------------------------


def figure(report: Report, path: Path) -> Path | None:
    """A figure table's PNG: the paper's Figure 4 helper for lambda, else the same picture against its x."""
    spec = report.spec
    if not spec.figure:
        return None
    from dnsrec.results.plot import LambdaPoint, lambda_figure

    valid_col = next((c for c in spec.columns if c.value == ("valid/pop100/ndcg@10",)), None)
    test_col = next((c for c in spec.columns if c.value == ("test/pop100/ndcg@10",)), None)
    points = []
    for rr in report.rows:
        for r in rr.complete:
            assert r.run is not None and rr.row.x is not None
            points.append(
                LambdaPoint(
                    rr.row.x,
                    r.run.metrics.get("valid/pop100/ndcg@10") if valid_col else None,
                    r.run.metrics.get("test/pop100/ndcg@10") if test_col else None,
                    r.run.flops,
                )
            )
    if spec.figure.get("x") == "search.lam" and points:  # (lambda_figure cannot draw an empty log axis)
        lambda_figure(path, points)
        return path
    _x_figure(path, points, str(spec.figure.get("xlabel", spec.figure.get("x"))), f"{spec.paper}: {spec.title}")
    return path


def _x_figure(path: Path, points: Sequence[Any], xlabel: str, title: str) -> None:
    """NDCG@10 (validation, test; left) and FLOPs (right) against a log-scaled x, each run a marker, the mean
    per x a line: lambda_figure's picture for another swept key."""
    from dnsrec.results.plot import BLUE, ORANGE, RED, _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    right = ax.twinx()
    xs = sorted({p.lam for p in points})
    for axes, attr, color, marker, name, scale in (
        (ax, "valid", BLUE, "o", "validation NDCG@10", 1.0),
        (ax, "test", ORANGE, "s", "test NDCG@10", 1.0),
        (right, "flops", RED, "^", "FLOPs", 1e6),
    ):
        by_x: dict[float, list[float]] = {}
        for p in points:
            if getattr(p, attr) is not None:
                by_x.setdefault(p.lam, []).append(getattr(p, attr) / scale)
        axes.scatter([x for x in xs for _ in by_x.get(x, [])], [v for x in xs for v in by_x.get(x, [])],
                     color=color, marker=marker, s=20, alpha=0.6)  # fmt: skip
        means = [(x, sum(by_x[x]) / len(by_x[x])) for x in xs if by_x.get(x)]
        axes.plot([m[0] for m in means], [m[1] for m in means], color=color, marker=marker, label=f"{name} (mean)")
    if xs:
        ax.set_xscale("log")
    ax.set_xlabel(f"{xlabel} (log scale)")
    ax.set_ylabel("NDCG@10 (pop100)")
    right.set_ylabel("FLOPs of the model (MFLOPs)")
    ax.set_title(f"{title}: {len(points)} runs at {len(xs)} values")
    ax.grid(True, alpha=0.3)
    handles = [h for axes in (ax, right) for h in axes.get_legend_handles_labels()[0]]
    labels = [lab for axes in (ax, right) for lab in axes.get_legend_handles_labels()[1]]
    ax.legend(handles, labels, loc="best", fontsize=8)
    if not points:
        ax.text(0.5, 0.5, "no complete runs", transform=ax.transAxes, ha="center", va="center")
    _save(fig, path)


def write(report: Report, out_dir: Path) -> list[Path]:
    """`<dataset>-<table>.md` and `.csv` (and `.png` for a figure) under `out_dir`; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{report.dataset}-{report.spec.name}"
    written = []
    png = out_dir / f"{stem}.png"
    md = markdown(report)
    if report.spec.figure:
        try:
            figure(report, png)
            md = md.replace("\n\n", f"\n\n![{report.spec.paper}]({png.name})\n\n", 1)
            written.append(png)
        except Exception as e:  # a missing matplotlib costs the figure, never the report
            md += f"\nFigure not drawn: {e}\n"
    for path, text in ((out_dir / f"{stem}.md", md), (out_dir / f"{stem}.csv", csv_text(report))):
        path.write_text(text)
        written.append(path)
    return written
