"""The caller of a run records it (DESIGN.md, "Who writes what"): one run on this process alone or as one of
several ranks (torchrun, SLURM tasks), every rank in rank 0's run directory; rank 0 alone reports the result
and records it in the results database.

`dnsrec train|run|retrain` and each job of their `--multirun` grid (`dnsrec.multirun`) run through
`run_and_record`; the sweep driver records its trials itself (`dnsrec.sweep`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dnsrec.run_result import RunResult

Report = Callable[[RunResult, Path], None]  # what rank 0 prints of a finished run (the CLI's summary)


@dataclass(frozen=True)
class DbOptions:
    url: str | None = None  # None: $DNSREC_DB_URL, else sqlite:///runs/dnsrec.db
    skip: bool = False


def run_and_record(run: Callable[[Path], RunResult], run_dir: Path, device: str, db: DbOptions, report: Report) -> None:
    """`run(run_dir)` on every rank, in rank 0's run directory (should the clocks' seconds in a default name
    differ); rank 0 alone reports and records the result."""
    from dnsrec.train import distributed

    distributed.init_from_env(device)
    run_dir = distributed.broadcast_object(run_dir)
    main = distributed.is_main()
    if main:
        print(f"run directory: {run_dir}")
    result = run(run_dir)
    if main:
        report(result, run_dir)
        record(result, run_dir, db)


def record(result: RunResult, run_dir: Path, db: DbOptions) -> None:
    """Record a written run in the database. A failure here only warns: result.json is already written,
    and `dnsrec results ingest RUN_DIR` records it later."""
    if db.skip:
        return
    from dnsrec.results import SlurmInfo, open_store

    try:
        store = open_store(db.url)
        try:
            slurm = SlurmInfo.from_env()
            run_id = store.record(result, run_dir, launcher="slurm" if slurm else "local", slurm=slurm)
            print(f"recorded as run {run_id} in {store.url}")
        finally:
            store.close()
    except Exception as e:  # any failure to record must never cost the run itself
        print(
            f"dnsrec: warning: result not recorded in the database ({e}); {run_dir / 'result.json'} is kept, "
            f"record it later with `dnsrec results ingest {run_dir}`",
            file=sys.stderr,
        )
