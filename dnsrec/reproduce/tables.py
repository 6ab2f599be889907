"""The paper's tables and figures as lists of points, read from `sweeps/experiment/reproduce/<name>.yaml`, and
the paper's own numbers, read from `sweeps/experiment/reproduce/paper.csv`.

A table is rows (a command, `run` or `train`, with its overrides) times the seeds given on the command line,
and columns (a recorded metric or run field, or a column the project cannot measure, with the reason). The
YAML files are the one place that says what each table runs; this module only reads and checks them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnsrec.compose import CONFIG_DIR
from dnsrec.errors import ConfigError

TABLE_DIR = CONFIG_DIR / "experiment" / "reproduce"
PAPER_FILE = TABLE_DIR / "paper.csv"
COMMANDS = ("run", "train")

# Which of the paper's datasets a dataset preset is compared with, and what the reader must know when the
# two are not the same data. Presets missing here have no paper column.
PAPER_DATASETS: dict[str, tuple[str, str]] = {
    "ml-1m": ("ML-1M", ""),
    "gowalla": ("Gowalla", ""),
    "douban": ("Douban", ""),
    "ml-100k": ("ML-1M", "the paper has no ML-100K: its ML-1M values are shown, the same family but not the same data"),
    "gowalla-1k": (
        "Gowalla",
        "gowalla-1k is a 1,000-user subset of Gowalla: the paper's full-Gowalla values are shown",
    ),
    "gowalla-100": (
        "Gowalla",
        "gowalla-100 is a 100-user subset of Gowalla: the paper's full-Gowalla values are shown",
    ),
}


@dataclass(frozen=True)
class Column:
    name: str
    value: tuple[str, ...] = ()  # a metric (valid/pop100/ndcg@10) or run fields (summed), or "architecture"
    better: str = "higher"  # higher or lower: the sign of an improvement
    scale: float = 1.0  # shown value = recorded value x scale (MB -> GB, seconds -> minutes, FLOPs -> M)
    missing_is_zero: bool = False  # a field a stage does not have counts 0 (a fixed model's search time)
    unavailable: str = ""  # why the project cannot fill this column (then `value` is empty)
    note: str = ""  # what a reader must know to compare the column's numbers (printed in the report's header)

    @property
    def numeric(self) -> bool:
        return not self.unavailable and self.value != ("architecture",)


@dataclass(frozen=True)
class Row:
    label: str
    command: str  # run (search + retrain) or train (a fixed model)
    overrides: tuple[str, ...] = ()
    group: str = ""
    x: float | None = None  # a figure's x value
    note: str = ""

    @property
    def key(self) -> str:
        """The row's name in paper.csv and in the report: "Group/label" inside a group."""
        return f"{self.group}/{self.label}" if self.group else self.label


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str
    paper: str
    ours: str  # the label of the row every other row (of its group) is compared with
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    improvement: str | None = None  # "range" (min~max over the baselines), or the label of one row
    figure: dict[str, Any] = field(default_factory=dict)  # {x: config key, xlabel: ...} for figures
    same_architecture: bool = False
    source: str = ""

    def groups(self) -> list[str]:
        return list(dict.fromkeys(r.group for r in self.rows))

    def ours_row(self, group: str) -> Row | None:
        return next((r for r in self.rows if r.group == group and r.label == self.ours), None)


def table_names(directory: Path = TABLE_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.yaml"))


def load_table(name: str, directory: Path = TABLE_DIR) -> TableSpec:
    """The table `name` (table3, ..., figure4, lr), checked: unknown keys, commands and rows are refused."""
    import yaml

    path = directory / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(table_names(directory)) or "(none)"
        raise ConfigError(f"unknown table {name!r}: known are {known} (files {directory}/<table>.yaml)")
    raw = yaml.safe_load(path.read_text())
    where = str(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping")
    _known(raw, {"title", "paper", "ours", "columns", "rows", "improvement", "figure", "same_architecture"}, where)
    columns = tuple(_column(c, where) for c in raw.get("columns") or [])
    rows = tuple(_row(r, where) for r in raw.get("rows") or [])
    if not columns or not rows:
        raise ConfigError(f"{where}: a table needs columns and rows")
    improvement = raw.get("improvement")
    if isinstance(improvement, dict):
        improvement = str(improvement.get("against", ""))
    spec = TableSpec(
        name=name,
        title=str(raw.get("title", name)),
        paper=str(raw.get("paper", "")),
        ours=str(raw.get("ours", "")),
        columns=columns,
        rows=rows,
        improvement=None if improvement is None else str(improvement),
        figure=dict(raw.get("figure") or {}),
        same_architecture=bool(raw.get("same_architecture", False)),
        source=str(path),
    )
    keys = [r.key for r in rows]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"{where}: row labels repeat within a group")
    for group in spec.groups():
        if spec.ours_row(group) is None:
            raise ConfigError(f"{where}: group {group or '(none)'!r} has no row {spec.ours!r} (the `ours` row)")
    if spec.figure and any(r.x is None for r in rows):
        raise ConfigError(f"{where}: every row of a figure needs its x")
    return spec


def _known(raw: dict[str, Any], keys: set[str], where: str) -> None:
    unknown = sorted(set(raw) - keys)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(keys))})")


def _column(raw: Any, where: str) -> Column:
    if not isinstance(raw, dict) or "name" not in raw:
        raise ConfigError(f"{where}: a column needs a name: {raw!r}")
    _known(raw, {"name", "value", "better", "scale", "missing_is_zero", "unavailable", "note"}, where)
    value = raw.get("value") or []
    values = tuple(str(v) for v in (value if isinstance(value, list) else [value]))
    if not values and not raw.get("unavailable"):
        raise ConfigError(f"{where}: column {raw['name']!r} needs a value or an `unavailable` reason")
    better = str(raw.get("better", "higher"))
    if better not in ("higher", "lower"):
        raise ConfigError(f"{where}: column {raw['name']!r}: better must be higher or lower, got {better!r}")
    return Column(
        name=str(raw["name"]),
        value=values,
        better=better,
        scale=float(raw.get("scale", 1.0)),
        missing_is_zero=bool(raw.get("missing_is_zero", False)),
        unavailable=str(raw.get("unavailable") or ""),
        note=str(raw.get("note") or ""),
    )


def _row(raw: Any, where: str) -> Row:
    if not isinstance(raw, dict) or "label" not in raw:
        raise ConfigError(f"{where}: a row needs a label: {raw!r}")
    _known(raw, {"label", "command", "overrides", "group", "x", "note"}, where)
    command = str(raw.get("command", "run"))
    if command not in COMMANDS:
        raise ConfigError(f"{where}: row {raw['label']!r}: command must be one of {', '.join(COMMANDS)}")
    return Row(
        label=str(raw["label"]),
        command=command,
        overrides=tuple(str(o) for o in raw.get("overrides") or []),
        group=str(raw.get("group") or ""),
        x=None if raw.get("x") is None else float(raw["x"]),
        note=str(raw.get("note") or ""),
    )


@dataclass(frozen=True)
class PaperValues:
    """The paper's printed cells: (table, paper dataset, row key, column) -> the value as printed."""

    cells: dict[tuple[str, str, str, str], str]

    def get(self, table: str, dataset: str | None, row: str, column: str) -> str | None:
        if dataset is None:
            return None
        return self.cells.get((table, dataset, row, column))


def load_paper(path: Path = PAPER_FILE) -> PaperValues:
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    cells: dict[tuple[str, str, str, str], str] = {}
    for rec in csv.DictReader(lines):
        cells[(rec["table"], rec["dataset"], rec["row"], rec["column"])] = rec["value"]
    return PaperValues(cells)


def paper_number(text: str | None) -> float | None:
    """A printed cell as a number (the significance mark dropped), or None for text such as a range."""
    if text is None:
        return None
    try:
        return float(text.rstrip("*").strip())
    except ValueError:
        return None
