"""Run the missing points of a table through the sweep's launchers (`dnsrec.launch`: local processes, one SLURM
job array per batch, or Ray tasks) and record each outcome in the results database.

As in the sweep driver, this process is the single writer of the database: workers only write their run
directories. A point is RUNNING while its job runs, then COMPLETE with its result or FAILED with the reason.
There are no retries here: a failed point stays missing in the report, and the next `dnsrec reproduce`
(which runs only what is missing) tries it again, resuming from its checkpoints in the same run directory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dnsrec.config.launcher import LauncherConfig
from dnsrec.errors import DNSRecError
from dnsrec.launch import Job, JobFailed, JobState, LaunchError, make_launcher
from dnsrec.reproduce.points import Planner, Point
from dnsrec.reproduce.records import keep_record
from dnsrec.results import ResultStore, SlurmInfo
from dnsrec.run_result import RESULT_FILE, RunResult
from dnsrec.worker import run_point


@dataclass
class Launched:
    point: Point
    run_dir: Path
    job: Job
    started: float = field(default_factory=time.monotonic)


@dataclass
class RunOutcome:
    completed: list[tuple[Point, int]] = field(default_factory=list)  # (point, run id)
    failed: list[tuple[Point, str]] = field(default_factory=list)  # (point, reason)


def free_run_dir(point: Point, root: Path, dataset: str) -> Path:
    """The point's run directory, or where it holds another config's run, the first free `<dir>-<k>`."""
    from dnsrec.pipeline import run_dir_conflict, run_stamp
    from dnsrec.reproduce.points import typed_config

    assert point.config is not None
    stamp = run_stamp(point.stage, typed_config(point.command, point.config))
    base = point.run_dir(root, dataset)
    candidate, k = base, 1
    while run_dir_conflict(candidate, stamp) is not None:
        k += 1
        candidate = base.with_name(f"{base.name}-{k}")
    return candidate


def run_missing(
    todo: Sequence[Point],
    planner: Planner,
    store: ResultStore,
    launcher_cfg: LauncherConfig,
    *,
    root: Path,
    parallel: int,
    poll_seconds: float,
    sweep: str,
    out: Callable[[str], None] = print,
    records: Path | None = None,
) -> RunOutcome:
    """Run `todo` through the launcher, `parallel` in flight, recording each as it ends; with `records`, each
    completed run's record is kept there at once (dnsrec.reproduce.records), so a stopped call loses none."""
    outcome = RunOutcome()
    if not todo:
        return outcome
    dataset = planner.dataset
    launcher = make_launcher(launcher_cfg, root / dataset / "jobs", parallel, poll_seconds)
    launcher.check()
    pending = list(todo)
    inflight: list[Launched] = []
    total = len(pending)
    try:
        while pending or inflight:
            free = parallel - len(inflight)
            if free > 0 and pending:
                batch, pending = pending[:free], pending[free:]
                _submit(batch, launcher, store, root, dataset, sweep, inflight, outcome, out)
            launcher.refresh()
            for f in [f for f in inflight if f.job.state() is JobState.DONE]:
                inflight.remove(f)
                _finish(f, planner, store, launcher.name, sweep, outcome, out, records)
                out(f"{len(outcome.completed) + len(outcome.failed)} of {total} points done")
            if inflight:
                time.sleep(poll_seconds)
    except KeyboardInterrupt:
        for f in inflight:
            f.job.cancel()
            _record_failure(
                store, f.point, f.run_dir, "interrupted: dnsrec reproduce was stopped", launcher.name, sweep
            )
        raise
    finally:
        launcher.close()
    return outcome


def _submit(
    batch: list[Point],
    launcher: Any,
    store: ResultStore,
    root: Path,
    dataset: str,
    sweep: str,
    inflight: list[Launched],
    outcome: RunOutcome,
    out: Callable[[str], None],
) -> None:
    dirs = [free_run_dir(p, root, dataset).resolve() for p in batch]
    names = [f"{sweep}-{d.name}" for d in dirs]
    try:
        jobs = launcher.submit(
            run_point, [(p.command, p.config, str(d)) for p, d in zip(batch, dirs, strict=True)], names
        )
    except LaunchError as e:
        for p, d in zip(batch, dirs, strict=True):
            reason = f"not submitted: {e}"
            _record_failure(store, p, d, reason, launcher.name, sweep)
            outcome.failed.append((p, reason))
            out(f"{p.row.key} seed {p.seed}: FAILED ({reason})")
        return
    for p, d, job in zip(batch, dirs, jobs, strict=True):
        assert p.config is not None
        store.record_running(
            d, stage=p.stage, dataset=dataset, config=p.config, sweep=sweep, launcher=launcher.name,
            slurm=_slurm_info(launcher.name, job.job_id),
        )  # fmt: skip
        inflight.append(Launched(p, d, job))
        out(f"{p.row.key} seed {p.seed}: submitted as job {job.job_id} ({d})")


def _finish(
    f: Launched,
    planner: Planner,
    store: ResultStore,
    launcher: str,
    sweep: str,
    outcome: RunOutcome,
    out: Callable[[str], None],
    records: Path | None = None,
) -> None:
    p = f.point
    try:
        value = f.job.result()
        result = value if isinstance(value, RunResult) else RunResult.read(f.run_dir / RESULT_FILE)
        if not planner.matches(p, result.stage, result.config):
            raise DNSRecError(f"{f.run_dir}: its result is of another config than the point's")
        run_id = store.record(
            result, f.run_dir, sweep=sweep, launcher=launcher, slurm=_slurm_info(launcher, f.job.job_id)
        )
    except (JobFailed, DNSRecError) as e:
        reason = e.reason if isinstance(e, JobFailed) else str(e)
        _record_failure(store, p, f.run_dir, reason, launcher, sweep)
        outcome.failed.append((p, reason))
        out(f"{p.row.key} seed {p.seed}: FAILED ({reason.splitlines()[-1] if reason else '?'})")
        return
    outcome.completed.append((p, run_id))
    seconds = time.monotonic() - f.started
    out(f"{p.row.key} seed {p.seed}: complete in {seconds:.0f} s, recorded as run {run_id}")
    if records is not None:
        out(keep_record(f.run_dir, records, planner.dataset))


def _record_failure(store: ResultStore, p: Point, run_dir: Path, reason: str, launcher: str, sweep: str) -> None:
    store.record_failure(
        run_dir, reason, stage=p.stage, dataset=str((p.config or {}).get("dataset", {}).get("name", "?")),
        config=p.config, sweep=sweep, launcher=launcher,
    )  # fmt: skip


def _slurm_info(launcher: str, job_id: str | None) -> SlurmInfo | None:
    if launcher != "slurm" or not job_id:
        return None
    array, _, task = job_id.partition("_")
    return SlurmInfo(job_id, array if task else None, int(task) if task.isdigit() else None)
