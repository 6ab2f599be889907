"""The report of one table on one dataset: Markdown and CSV (and a PNG for a figure), from recorded runs.

Each cell is our mean ± sample sd over the seeds that have a COMPLETE run, beside the paper's printed value
for the same cell where it has one. Every row is compared with the table's `ours` row (of its group) by a
two-sided Welch t-test per column (`*`: p < 0.05) and by the paper's relative improvement. A point that
could not run (a config key that does not exist yet), failed or was not run is marked with its reason; it
never stops the report and is never filled in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

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
        found = sorted({run_mode(r.run) for r in self.complete if r.run is not None})
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
        return rr.text.get(column.name, missing_text(rr))
    s = rr.summaries[column.name]
    if s.mean is None:
        return missing_text(rr)
    text = _number(s.mean) + ("" if s.sd is None else f" ± {sd_text(s.sd, s.mean)}")
    if stats.significant(rr.p.get(column.name)):
        text += "*"
    if s.n < len(report.seeds):
        text += f" ({s.n}/{len(report.seeds)} seeds)"
    return text


def missing_text(rr: RowReport) -> str:
    statuses = {r.status for r in rr.results}
    if statuses == {"unavailable"}:
        return "unavailable"
    return "missing"


def sd_text(sd: float, mean: float) -> str:
    """The sd as printed: "0" for the float residue numpy leaves on identical values (54.0672 three times has
    an sd of about 1e-14), which printed as "0.0000" beside exact zeros' "0"."""
    return "0" if sd <= 1e-9 * abs(mean) else _number(sd)


def _number(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 1:
        return f"{x:.2f}"
    return f"{x:.4f}"


def p_text(p: float | None) -> str:
    return "n/a" if p is None else (f"{p:.3g}" + (" *" if stats.significant(p) else ""))


def run_mode(run: RunView | None) -> str:
    train = (run.config.get("train") if run is not None else None) or {}
    return str(train.get("mode", "window (not recorded: the default then)"))


# -- Markdown --------------------------------------------------------------------------------------------
