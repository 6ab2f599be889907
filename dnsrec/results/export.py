"""Export runs to CSV (flat: one row per run, one column per metric, for spreadsheets and pandas) or
JSON (everything, including config and architecture, for scripts)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from dnsrec.files import WriteFailed, atomic_write_text, why_not_written
from dnsrec.results.errors import QueryError
from dnsrec.results.views import ARCH_FIELDS, RUN_FIELDS, RunView

FORMATS = ("csv", "json")
ARCH_ONLY = tuple(name for name in ARCH_FIELDS if name not in RUN_FIELDS)  # gate_layers is the run's


def flat_row(run: RunView, metrics: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {name: run.value(name) for name in RUN_FIELDS}
    row |= {name: (run.architecture or {}).get(name) for name in ARCH_ONLY}
    row |= {name: run.metrics.get(name) for name in metrics}
    for name in ("started_at", "finished_at", "recorded_at"):
        row[name] = row[name].isoformat() if row[name] else None
    return {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()}


def write_export(path: Path, fmt: str, runs: list[RunView]) -> None:
    if fmt not in FORMATS:
        raise QueryError(f"unknown export format {fmt!r}; valid are {', '.join(FORMATS)}")
    # Refused rather than guessed: a directory is not a file name, and a missing folder is more often a
    # typo than a wish (it was created silently).
    if path.is_dir():
        raise QueryError(f"cannot export to {path}: it is a directory; give a file name, e.g. {path / 'runs.csv'}")
    if not path.parent.is_dir():
        raise QueryError(f"cannot export to {path}: no directory {path.parent}")
    if fmt == "json":
        text = json.dumps([run.to_dict() for run in runs], indent=2, sort_keys=True) + "\n"
    else:
        metrics = sorted({name for run in runs for name in run.metrics})
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=[*RUN_FIELDS, *ARCH_ONLY, *metrics])
        writer.writeheader()
        writer.writerows(flat_row(run, metrics) for run in runs)
        text = buffer.getvalue()
    try:
        atomic_write_text(path, text)  # unwritable place, full disk: nothing half-written is left behind
    except WriteFailed as e:
        raise QueryError(f"cannot export to {path}: {why_not_written(path, e.__cause__ or e)}") from e
