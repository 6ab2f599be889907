"""The record of every run a report reads, kept beside the report: `<records>/<dataset>/<run directory name>/`.

A run directory lives on scratch space (a cluster's, or a machine that goes away); the report names the
results database it was written from, which may not travel either. Copying each run's `result.json` (config,
metrics, architecture, timings), `ranks.npz` (per-user ranks, for paired comparisons) and
`architecture.json` next to the reports lets anyone rebuild the database (`dnsrec results ingest
<records>/*/*/`, `make records`) and regenerate or extend a table from the repository alone. Checkpoints
are left out: no report reads them.

Each file is written to a temporary name and renamed, `result.json` last, so a record folder holding a
`result.json` is whole. A run directory whose `result.json` is no longer the one the database recorded
(its digest differs) is not copied: the record would not be the run the report reads.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from dnsrec.evaluate import RANKS_FILE
from dnsrec.results.extract import digest
from dnsrec.run_result import RESULT_FILE, RunResult

ARCHITECTURE_FILE = "architecture.json"
RECORD_FILES = (RANKS_FILE, ARCHITECTURE_FILE, RESULT_FILE)  # result.json last: it marks a whole record


def keep_record(run_dir: str | Path, records: Path, dataset: str, recorded_sha256: str | None = None) -> str:
    """Copy a finished run's record into `records/<dataset>/<name>`; a line saying what was done.

    Nothing is copied when the run directory is the record folder itself (a database rebuilt from the
    records), when its result is gone, or when it is not the result the database recorded."""
    src = Path(run_dir)
    dest = records / dataset / src.name
    result_file = src / RESULT_FILE
    if not result_file.is_file():
        return f"record not kept: {result_file} is gone"
    if dest.exists() and dest.resolve() == src.resolve():
        return f"record kept already: {dest}"
    if (dest / RESULT_FILE).is_file() and (dest / RESULT_FILE).read_bytes() == result_file.read_bytes():
        return f"record kept already: {dest}"  # kept when it finished; the report's pass finds it whole
    if recorded_sha256 is not None and digest(RunResult.read(result_file)) != recorded_sha256:
        return f"record not kept: {result_file} is not the result the database recorded (it changed since)"
    dest.mkdir(parents=True, exist_ok=True)
    for name in RECORD_FILES:
        if (src / name).is_file():
            partial = dest / f".{name}.partial"
            shutil.copyfile(src / name, partial)
            os.replace(partial, dest / name)
    return f"record kept: {dest}"
