"""Writing a table's report: Markdown and CSV (and a PNG for a figure) from the cells `report.build` made.

Split from the report's data (dnsrec/reproduce/report.py) so each file holds one thing: what a cell says
there, how it is printed here.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from dnsrec.files import atomic_write_text
from dnsrec.reproduce import stats
from dnsrec.reproduce.report import (
    Report,
    architecture_text,
    cell_text,
    improvement_cells,
    missing_text,
    p_text,
    run_mode,
)
from dnsrec.results import RunView


def markdown(report: Report, out_dir: Path | None = None) -> str:
    """The report's Markdown; `out_dir`: the folder it is written to (run directories beneath it print as
    relative links, so a committed report names its records the same in every checkout)."""
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
    notes += [f"{c.name}: {c.note}" for c in spec.columns if c.note]
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
    w(runs_md(report, out_dir))
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
        lines.append(f"| {_md(rr.row.key)} | " + " | ".join(p_text(rr.p.get(c.name)) for c in cols) + " |\n")
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


def runs_md(report: Report, out_dir: Path | None = None) -> str:
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
            where = _run_dir_text(v.run_dir, out_dir)
            cells = [_md(rr.row.key), r.point.seed, v.id, run_mode(v), _md(v.device or "-"), cost, commit, where]
            lines.append("| " + " | ".join(map(str, cells)) + " |\n")
    return "".join(lines) + "\n"


def _run_dir_text(run_dir: str | None, out_dir: Path | None) -> str:
    """A run directory beneath the report's folder as a link relative to it; any other as recorded."""
    if not run_dir or out_dir is None:
        return run_dir or "-"
    try:
        relative = Path(run_dir).resolve().relative_to(out_dir.resolve())
    except ValueError:
        return run_dir
    return f"[{relative}]({relative})"


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
    found = sorted({run_mode(r.run) for rr in report.rows for r in rr.complete if r.run})
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
                else ("complete" if s.n == len(report.seeds) else missing_text(rr) if s.n == 0 else "partial")
            )
            if not c.numeric and not c.unavailable:
                status = "complete" if rr.text.get(c.name) else missing_text(rr)
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
    """A figure table's PNG: the paper's Figure 4 picture (`lambda_figure`) against the table's swept key."""
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
    xlabel = str(spec.figure.get("xlabel", spec.figure.get("x")))
    lambda_figure(path, points, xlabel=xlabel, title=f"{spec.paper}: {spec.title}")
    return path


def write(report: Report, out_dir: Path) -> list[Path]:
    """`<dataset>-<table>.md` and `.csv` (and `.png` for a figure) under `out_dir`; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{report.dataset}-{report.spec.name}"
    written = []
    png = out_dir / f"{stem}.png"
    md = markdown(report, out_dir)
    if report.spec.figure:
        try:
            figure(report, png)
            md = md.replace("\n\n", f"\n\n![{report.spec.paper}]({png.name})\n\n", 1)
            written.append(png)
        except Exception as e:  # a missing matplotlib costs the figure, never the report
            md += f"\nFigure not drawn: {e}\n"
    for path, text in ((out_dir / f"{stem}.md", md), (out_dir / f"{stem}.csv", csv_text(report))):
        atomic_write_text(path, text)  # a killed reproduce never leaves half a report
        written.append(path)
    return written
