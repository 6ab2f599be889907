"""`ResultStore`: record runs and query them, on SQLite or PostgreSQL, through one transaction path.

Why this shape (DESIGN.md "Who writes what"): the caller of a run records it, and `ingest` rebuilds a row
from any run directory's `result.json`, so the database is an index that can always be rebuilt. A run is
identified by its absolute run directory: recording it again updates the same row (an upsert, so two
writers racing on one run directory still leave one row), and its architecture and metrics are replaced
in the same transaction. Nothing is written unless the whole result validates.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Engine, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, contains_eager, selectinload, sessionmaker

from dnsrec.errors import DNSRecError
from dnsrec.results import database
from dnsrec.results.errors import DatabaseUnavailable, InvalidResult, QueryError, ResultsError
from dnsrec.results.export import write_export
from dnsrec.results.extract import (
    STAGES,
    MetricKey,
    architecture_values,
    key_parameters,
    metric_rows,
    run_values,
    validate,
)
from dnsrec.results.filters import NUMERIC, RunFilter, metric_value, resolve
from dnsrec.results.models import ArchitectureRow, Metric, Run, Sweep, SweepLease, utcnow
from dnsrec.results.pareto import front
from dnsrec.results.report import comparison_rows
from dnsrec.results.retry import DbGrace, retried
from dnsrec.results.views import RunView
from dnsrec.run_result import RESULT_FILE, RunResult

DEFAULT_METRIC = "test/pop100/ndcg@10"


@dataclass(frozen=True)
class SlurmInfo:
    """Where a SLURM job ran: job id, and for array jobs the array's job id and this task's index."""

    job_id: str
    array_job_id: str | None = None
    array_task_id: int | None = None

    @staticmethod
    def from_env(env: dict[str, str] | None = None) -> SlurmInfo | None:
        env = dict(os.environ) if env is None else env
        if not env.get("SLURM_JOB_ID"):
            return None
        task = env.get("SLURM_ARRAY_TASK_ID", "")
        return SlurmInfo(env["SLURM_JOB_ID"], env.get("SLURM_ARRAY_JOB_ID"), int(task) if task.isdigit() else None)


@dataclass(frozen=True)
class Lease:
    """The driver holding a sweep's lease (`dnsrec_sweep_leases`)."""

    sweep: str
    token: str
    host: str
    pid: int
    heartbeat_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True)
class ParetoPoint:
    run: RunView
    quality: float
    cost: float
    on_front: bool


@dataclass(frozen=True)
class Pareto:
    metric: str
    cost: str
    points: list[ParetoPoint]  # every complete run with both numbers, by cost ascending

    @property
    def front(self) -> list[ParetoPoint]:
        return [p for p in self.points if p.on_front]

    def within(self, reference: ParetoPoint, cost_ratio: float) -> list[ParetoPoint]:
        """Front points (other than the reference run) at no more than `cost_ratio` times its cost."""
        return [p for p in self.front if p.run.id != reference.run.id and p.cost <= cost_ratio * reference.cost]

    def matching(self, reference: ParetoPoint, cost_ratio: float) -> list[ParetoPoint]:
        """Those of them at least as good as `reference`: e.g. a searched model as accurate as SASRec at half
        its FLOPs."""
        return [p for p in self.within(reference, cost_ratio) if p.quality >= reference.quality]


@dataclass(frozen=True)
class Comparison:
    runs: list[RunView]
    rows: list[tuple[str, list[Any]]]  # field name -> one value per run (fields that differ, and metrics)


class ResultStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        # How long the writes a sweep driver makes wait out a database that is away (a restart): never,
        # unless the caller says so (the driver sets sweep.db_grace_seconds).
        self.grace = DbGrace(0.0, what=f"the results database {self.url}")

    @property
    def url(self) -> str:
        """The database URL with its password masked: the only form that is ever printed."""
        return database.masked(self.engine.url)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """The one transaction path: commit at the end, or roll back on any exception."""
        with self._sessions() as s:
            try:
                yield s
                s.commit()
            except DBAPIError as e:
                s.rollback()
                raise ResultsError(f"{self.url}: {database.describe_db_error(e, self.engine.url)}") from e
            except BaseException:
                s.rollback()
                raise

    # -- writing ---------------------------------------------------------------------------------------

    @retried
    def ensure_sweep(self, name: str, dataset: str | None = None, config: dict[str, Any] | None = None) -> int:
        with self.session() as s:
            return self._sweep_id(s, name, dataset, config)

    @retried
    def record(
        self,
        result: RunResult,
        run_dir: str | Path,
        sweep: str | None = None,
        trial: int | None = None,
        launcher: str | None = None,
        slurm: SlurmInfo | None = None,
    ) -> int:
        """Validate `result`, then write its run, architecture and metrics in one transaction; the run's id.

        `sweep`, `trial`, `launcher`, `slurm` left None keep what an earlier record of this run directory
        said (a new row gets launcher "local")."""
        directory = _directory(run_dir)
        validate(result, f"result of {directory}")
        values, arch, metrics = run_values(result), architecture_values(result), metric_rows(result)
        with self.session() as s:
            run_id = self._upsert(s, directory, values, result.dataset, sweep, trial, launcher, slurm)
            s.execute(insert(ArchitectureRow).values(run_id=run_id, **arch))
            s.execute(insert(Metric), [{"run_id": run_id, **m} for m in metrics])
        return run_id

    def ingest(
        self,
        run_dir: str | Path,
        sweep: str | None = None,
        trial: int | None = None,
        launcher: str | None = None,
        slurm: SlurmInfo | None = None,
    ) -> int:
        """Record a run directory made elsewhere from its `result.json` (or the file itself)."""
        path = Path(run_dir)
        path = path if path.name == RESULT_FILE and path.is_file() else path / RESULT_FILE
        if not path.is_file():
            raise InvalidResult(f"{path}: no such result file (is {path.parent} a dnsrec run directory?)")
        try:
            result = RunResult.read(path)
        except (DNSRecError, TypeError) as e:
            raise InvalidResult(f"{path}: not recorded: {e}") from e
        validate(result, str(path))
        return self.record(result, path.parent, sweep, trial, launcher, slurm)

    def record_failure(
        self,
        run_dir: str | Path,
        reason: str,
        *,
        stage: str,
        dataset: str,
        config: dict[str, Any] | None = None,
        sweep: str | None = None,
        trial: int | None = None,
        launcher: str | None = None,
        slurm: SlurmInfo | None = None,
    ) -> int:
        """Mark a run directory FAILED with its reason; the row then reflects this latest attempt."""
        return self._record_status("FAILED", run_dir, reason, stage, dataset, config, sweep, trial, launcher, slurm)

    def record_running(
        self,
        run_dir: str | Path,
        *,
        stage: str,
        dataset: str,
        config: dict[str, Any] | None = None,
        sweep: str | None = None,
        trial: int | None = None,
        launcher: str | None = None,
        slurm: SlurmInfo | None = None,
    ) -> int:
        """Mark a run directory RUNNING (a launched trial), so a sweep's table shows work in progress."""
        return self._record_status("RUNNING", run_dir, None, stage, dataset, config, sweep, trial, launcher, slurm)

    @retried
    def _record_status(
        self,
        status: str,
        run_dir: str | Path,
        reason: str | None,
        stage: str,
        dataset: str,
        config: dict[str, Any] | None,
        sweep: str | None,
        trial: int | None,
        launcher: str | None,
        slurm: SlurmInfo | None,
    ) -> int:
        directory = _directory(run_dir)
        if stage not in STAGES or not dataset:
            raise InvalidResult(f"{directory}: stage must be one of {', '.join(STAGES)} and dataset non-empty")
        values = {
            **dict.fromkeys(_RESULT_ONLY),
            "status": status,
            "failure_reason": reason,
            "stage": stage,
            "dataset": dataset,
        }
        values |= {**key_parameters(config or {}, stage), "config": config or {}}
        with self.session() as s:
            return self._upsert(s, directory, values, dataset, sweep, trial, launcher, slurm)

    def _upsert(
        self,
        s: Session,
        run_dir: str,
        values: dict[str, Any],
        dataset: str,
        sweep: str | None,
        trial: int | None,
        launcher: str | None,
        slurm: SlurmInfo | None,
    ) -> int:
        """Insert or update the run row of `run_dir`, removing its old architecture and metrics."""
        given: dict[str, Any] = {"trial": trial, "launcher": launcher}
        if sweep is not None:
            given["sweep_id"] = self._sweep_id(s, sweep, dataset, None)
        if slurm is not None:
            given |= {
                "slurm_job_id": slurm.job_id,
                "slurm_array_job_id": slurm.array_job_id,
                "slurm_array_task_id": slurm.array_task_id,
            }
        row = {"run_dir": run_dir, **values, **{k: v for k, v in given.items() if v is not None}}
        row["recorded_at"] = utcnow()
        stmt = self._insert(Run).values(row)
        stmt = stmt.on_conflict_do_update(
            index_elements=[Run.run_dir], set_={k: stmt.excluded[k] for k in row if k != "run_dir"}
        )
        run_id: int = s.execute(stmt.returning(Run.id)).scalar_one()
        s.execute(delete(Metric).where(Metric.run_id == run_id))
        s.execute(delete(ArchitectureRow).where(ArchitectureRow.run_id == run_id))
        return run_id

    def _sweep_id(self, s: Session, name: str, dataset: str | None, config: dict[str, Any] | None) -> int:
        row = {"name": name, "dataset": dataset, "config": config or {}, "created_at": utcnow()}
        s.execute(self._insert(Sweep).values(row).on_conflict_do_nothing(index_elements=[Sweep.name]))
        sweep_id: int = s.execute(select(Sweep.id).where(Sweep.name == name)).scalar_one()
        return sweep_id

    # -- sweep leases: one driver per sweep ----------------------------------------------------------------

    def take_lease(self, sweep: str, token: str, host: str, pid: int, seconds: float) -> Lease:
        """Take the lease of `sweep` for the driver `token` if no one holds it, its holder's lease has
        expired, or it is already this driver's; the holder afterwards (this driver's lease if it got it).

        Atomic on every backend: one INSERT .. ON CONFLICT DO UPDATE .. WHERE expired, so of two drivers
        starting together exactly one gets the row (SQLite serialises the transactions, PostgreSQL the
        conflicting inserts on the primary key)."""
        now = utcnow()
        row = {"sweep": sweep, "token": token, "host": host, "pid": pid}
        row |= {"acquired_at": now, "heartbeat_at": now, "expires_at": now + dt.timedelta(seconds=seconds)}
        with self.session() as s:
            stmt = self._insert(SweepLease).values(row)
            stmt = stmt.on_conflict_do_update(
                index_elements=[SweepLease.sweep],
                set_={k: stmt.excluded[k] for k in row if k != "sweep"},
                where=(SweepLease.expires_at < now) | (SweepLease.token == token),
            )
            s.execute(stmt)
            held = s.execute(select(SweepLease).where(SweepLease.sweep == sweep)).scalar_one()
            return Lease(held.sweep, held.token, held.host, held.pid, held.heartbeat_at, held.expires_at)

    def renew_lease(self, sweep: str, token: str, seconds: float) -> bool:
        """The heartbeat: push the expiry of this driver's lease on; False if it is no longer this driver's."""
        now = utcnow()
        with self.session() as s:
            done = s.execute(
                update(SweepLease)
                .where(SweepLease.sweep == sweep, SweepLease.token == token)
                .values(heartbeat_at=now, expires_at=now + dt.timedelta(seconds=seconds))
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def release_lease(self, sweep: str, token: str) -> None:
        with self.session() as s:
            s.execute(delete(SweepLease).where(SweepLease.sweep == sweep, SweepLease.token == token))

    def _insert(self, table: type[Run] | type[Sweep] | type[SweepLease]) -> Any:
        """INSERT with ON CONFLICT: the dialect's own, since upserts are what keep concurrent writers exact."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    # -- reading ---------------------------------------------------------------------------------------

    def metric_names(self) -> set[str]:
        with self.session() as s:
            rows = s.execute(select(Metric.split, Metric.protocol, Metric.metric, Metric.k).distinct()).all()
        return {str(MetricKey(*row)) for row in rows}

    def list_runs(
        self,
        filters: RunFilter | None = None,
        sort: str | None = None,
        descending: bool | None = None,
        limit: int | None = None,
    ) -> list[RunView]:
        """Runs matching `filters`; sorted by a field or metric (metrics best first unless `descending`
        says otherwise), then by id."""
        metrics = self.metric_names()
        order: list[Any] = []
        if sort is not None:
            expr, _ = resolve(sort, metrics)
            down = ("/" in sort) if descending is None else descending
            order.append((expr.desc() if down else expr.asc()).nulls_last())
        if limit is not None and limit < 1:
            raise QueryError(f"limit must be a positive number of runs, got {limit}")
        return self._views((filters or RunFilter()).conditions(metrics), order, limit)

    def get_run(self, run_id: int) -> RunView:
        found = self._views([Run.id == run_id], [], None)
        if not found:
            raise QueryError(f"no run with id {run_id} in {self.url}")
        return found[0]

    def best(
        self,
        metric: str = "ndcg@10",
        split: str = "test",
        protocol: str = "pop100",
        filters: RunFilter | None = None,
    ) -> RunView | None:
        """The complete run with the highest value of a metric (`metric` may also be a whole key such as
        `valid/full/ndcg@10`); ties go to fewer FLOPs, then the older run."""
        key, metrics = self._metric_key(metric, split, protocol)
        value = metric_value(key)
        conditions = [*(filters or RunFilter()).conditions(metrics), Run.status == "COMPLETE", value.is_not(None)]
        found = self._views(conditions, [value.desc(), ArchitectureRow.flops.asc().nulls_last()], 1)
        return found[0] if found else None

    def pareto(self, metric: str = DEFAULT_METRIC, filters: RunFilter | None = None, cost: str = "flops") -> Pareto:
        """Complete runs with `metric` (higher better) and `cost` (lower better), the front marked."""
        key, metrics, quality, price = self._quality_and_price(metric, cost)
        conditions = [*(filters or RunFilter()).conditions(metrics), Run.status == "COMPLETE"]
        stmt = _joined(select(Run.id, quality, price)).where(*conditions, quality.is_not(None), price.is_not(None))
        with self.session() as s:
            rows = [(int(i), float(q), float(c)) for i, q, c in s.execute(stmt).all()]
        on_front = set(front(rows))
        views = {v.id: v for v in self._views([Run.id.in_([r[0] for r in rows])], [], None)}
        points = [ParetoPoint(views[i], q, c, i in on_front) for i, q, c in sorted(rows, key=lambda r: (r[2], -r[1]))]
        return Pareto(str(key), cost, points)

    def pareto_point(self, run_id: int, metric: str = DEFAULT_METRIC, cost: str = "flops") -> ParetoPoint:
        """One run's (metric, cost), as `pareto` reads them, whatever filters the front was drawn with."""
        key, _, quality_of, price_of = self._quality_and_price(metric, cost)
        stmt = _joined(select(Run.status, quality_of, price_of)).where(Run.id == run_id)
        with self.session() as s:
            found = s.execute(stmt).first()
        if found is None:
            raise QueryError(f"no run with id {run_id} in {self.url}")
        status, quality, price = found
        if status != "COMPLETE":
            raise QueryError(f"run {run_id} is {status}, not COMPLETE: it has no result to compare with")
        if quality is None or price is None:
            raise QueryError(f"run {run_id} has no {'metric ' + str(key) if quality is None else cost} to compare with")
        if not price > 0:
            raise QueryError(f"run {run_id} has {cost} {price}: a cost ratio against it means nothing")
        (view,) = self._views([Run.id == run_id], [], None)
        return ParetoPoint(view, float(quality), float(price), on_front=False)

    def compare(self, ids: Sequence[int]) -> Comparison:
        views = {v.id: v for v in self._views([Run.id.in_(list(ids))], [], None)}
        missing = [i for i in ids if i not in views]
        if missing:
            raise QueryError(f"no run with id {', '.join(map(str, missing))} in {self.url}")
        runs = [views[i] for i in ids]
        return Comparison(runs, comparison_rows(runs))

    def export(self, path: str | Path, fmt: str = "csv", filters: RunFilter | None = None) -> int:
        """Write the matching runs to `path` as CSV (one row per run, one column per metric) or JSON."""
        runs = self.list_runs(filters)
        write_export(Path(path), fmt, runs)
        return len(runs)

    def _quality_and_price(self, metric: str, cost: str) -> tuple[MetricKey, set[str], Any, Any]:
        """The metric (higher better) and the cost (lower better) of a Pareto front, as SQL expressions."""
        key, metrics = self._metric_key(metric, "test", "pop100")
        if cost not in NUMERIC:
            raise QueryError(f"unknown cost {cost!r}; valid are {', '.join(sorted(NUMERIC))}")
        return key, metrics, metric_value(key), NUMERIC[cost]

    def _metric_key(self, metric: str, split: str, protocol: str) -> tuple[MetricKey, set[str]]:
        prefix = {0: f"{split}/{protocol}/", 1: f"{split}/"}.get(metric.count("/"), "")
        key = MetricKey.parse(prefix + metric)
        metrics = self.metric_names()
        if metrics and str(key) not in metrics:
            raise QueryError(f"no runs have metric {key}; recorded metrics are {', '.join(sorted(metrics))}")
        return key, metrics

    def _views(self, conditions: Sequence[ColumnElement[bool]], order: list[Any], limit: int | None) -> list[RunView]:
        stmt = (
            _joined(select(Run))
            .options(selectinload(Run.metrics), contains_eager(Run.architecture), contains_eager(Run.sweep))
            .where(*conditions)
            .order_by(*order, Run.id)
            .limit(limit)
        )
        with self.session() as s:
            return [RunView.of(run) for run in s.scalars(stmt).unique()]


def _joined(stmt: Any) -> Any:
    return stmt.outerjoin(Run.architecture).outerjoin(Run.sweep)


def _directory(run_dir: str | Path) -> str:
    return str(Path(run_dir).expanduser().resolve())


# Columns that only a finished result fills: cleared when a run directory is marked FAILED or RUNNING.
_RESULT_ONLY = (
    "git_commit", "host", "device", "started_at", "finished_at", "search_seconds", "retrain_seconds",
    "inference_seconds", "train_seconds", "seconds_per_epoch", "peak_memory_mb", "inference_memory_mb",
    "epochs", "best_epoch",
    "stopped", "search_best_epoch", "search_steps", "decision_width_p", "decision_depth_q",
    "decision_settled_epochs", "result_sha256",
)  # fmt: skip


def open_store(url: str | None = None) -> ResultStore:
    """Open (and create or upgrade to the current schema) the results database at `url`, else
    $DNSREC_DB_URL, else `sqlite:///runs/dnsrec.db`. Unreachable: one clear line, nothing written."""
    parsed = database.resolve_url(url)
    try:
        engine = database.create(parsed)
    except OSError as e:
        raise DatabaseUnavailable(f"cannot create the results database {database.masked(parsed)}: {e}") from e
    try:
        database.upgrade(engine)
    except DBAPIError as e:
        engine.dispose()
        reason = database.describe_db_error(e, parsed)
        raise DatabaseUnavailable(f"cannot reach the results database {database.masked(parsed)}: {reason}") from e
    except BaseException:
        engine.dispose()
        raise
    return ResultStore(engine)
