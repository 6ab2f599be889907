"""The results database's tables: SQLAlchemy 2 typed declarative models.

Why this shape: a run is one row with its key parameters as typed columns (so filters and SQL stay simple),
its full resolved config as JSON (so nothing is lost), one architecture row and one row per metric value
(split, protocol, metric, k), so any metric can be filtered, sorted or compared without parsing JSON.
Every table is prefixed `dnsrec_` because Optuna's storage shares the database (it owns `alembic_version`,
`studies`, `trials`, ...). The schema is created by the Alembic migration in `db/`, which must match
these models exactly (`open_store` checks it).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

PREFIX = "dnsrec_"
STATUSES = ("COMPLETE", "FAILED", "RUNNING")

# JSON on SQLite, JSONB (indexable, compact) on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend: SQLite drops the offset, PostgreSQL keeps it, so
    values are normalised to UTC on the way in and marked UTC on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    # Deterministic constraint names on every backend, so migrations can name what they alter.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSONType,
        list[int]: JSONType,
        dt.datetime: UTCDateTime(),
    }


class Sweep(Base):
    """A named group of runs (an Optuna study, a paper table); its config is the sweep's own settings."""

    __tablename__ = PREFIX + "sweeps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    dataset: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)

    runs: Mapped[list[Run]] = relationship(back_populates="sweep")


class Run(Base):
    """One run directory: a trained model (COMPLETE), a failed attempt (FAILED) or one in progress."""

    __tablename__ = PREFIX + "runs"
    __table_args__ = (
        CheckConstraint("status IN ('COMPLETE', 'FAILED', 'RUNNING')", name="status"),
        Index(None, "dataset", "status"),
        Index(None, "sweep_id", "trial"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The identity of a run: its absolute run directory. Recording it again updates this row.
    run_dir: Mapped[str] = mapped_column(String(1024), unique=True)
    sweep_id: Mapped[int | None] = mapped_column(ForeignKey(Sweep.id, ondelete="SET NULL"))
    trial: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    stage: Mapped[str] = mapped_column(String(16))
    dataset: Mapped[str] = mapped_column(String(64))
    # What produced the run: a search stage's `search.method` (dnsrec, darts, ...), a trained model's
    # `model.family` (sasrec, fdsa, ...); without it a DARTS run and a DNS-Rec run look the same.
    method: Mapped[str | None] = mapped_column(String(16))
    # Key parameters (DESIGN.md key names); None where the stage has no such parameter.
    attention: Mapped[str | None] = mapped_column(String(16))
    lam: Mapped[float | None] = mapped_column(Float)
    gate_layers: Mapped[int | None] = mapped_column(Integer)
    lr: Mapped[float | None] = mapped_column(Float)
    seed: Mapped[int | None] = mapped_column(Integer)
    shape: Mapped[str | None] = mapped_column(String(16))
    init: Mapped[str | None] = mapped_column(String(16))
    search_epochs: Mapped[int | None] = mapped_column(Integer)
    batch: Mapped[int | None] = mapped_column(Integer)  # target positions per step of the final training
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the full resolved config
    # Where and how it ran.
    git_commit: Mapped[str | None] = mapped_column(String(64))
    launcher: Mapped[str] = mapped_column(String(16), default="local")
    slurm_job_id: Mapped[str | None] = mapped_column(String(32))
    slurm_array_job_id: Mapped[str | None] = mapped_column(String(32))
    slurm_array_task_id: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String(255))
    device: Mapped[str | None] = mapped_column(String(128))
    environment: Mapped[dict[str, Any]] = mapped_column(default=dict)
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Timings and training outcome.
    search_seconds: Mapped[float | None] = mapped_column(Float)
    retrain_seconds: Mapped[float | None] = mapped_column(Float)
    inference_seconds: Mapped[float | None] = mapped_column(Float)
    train_seconds: Mapped[float | None] = mapped_column(Float)
    seconds_per_epoch: Mapped[float | None] = mapped_column(Float)
    peak_memory_mb: Mapped[float | None] = mapped_column(Float)
    inference_memory_mb: Mapped[float | None] = mapped_column(Float)
    epochs: Mapped[int | None] = mapped_column(Integer)
    best_epoch: Mapped[int | None] = mapped_column(Integer)
    stopped: Mapped[str | None] = mapped_column(String(32))
    search_best_epoch: Mapped[int | None] = mapped_column(Integer)
    search_steps: Mapped[int | None] = mapped_column(Integer)
    # How firmly the search decided (dnsrec.nas.commitment): at the decision epoch, the least p of a kept
    # layer's chosen width and the q of the chosen depth; the final search epochs ending on that choice.
    decision_width_p: Mapped[float | None] = mapped_column(Float)
    decision_depth_q: Mapped[float | None] = mapped_column(Float)
    decision_settled_epochs: Mapped[int | None] = mapped_column(Integer)
    result_sha256: Mapped[str | None] = mapped_column(String(64))  # of result.json's canonical JSON

    sweep: Mapped[Sweep | None] = relationship(back_populates="runs")
    architecture: Mapped[ArchitectureRow | None] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )
    metrics: Mapped[list[Metric]] = relationship(
        back_populates="run", cascade="all, delete-orphan", passive_deletes=True
    )


class ArchitectureRow(Base):
    """The final model of a run: its shape (searched or fixed) with FLOPs and parameters, and for DNS-Rec
    runs the un-pruned supernet shape's, so pruning ratios are one division. A database row, read from
    result.json's `architecture` (the value a search derives is `dnsrec.nas.architecture.Architecture`)."""

    __tablename__ = PREFIX + "architectures"

    run_id: Mapped[int] = mapped_column(ForeignKey(Run.id, ondelete="CASCADE"), primary_key=True)
    depth: Mapped[int | None] = mapped_column(Integer)
    d: Mapped[int | None] = mapped_column(Integer)
    d_inner: Mapped[int | None] = mapped_column(Integer)  # the supernet's FFN width D
    head_dim: Mapped[int | None] = mapped_column(Integer)
    hidden: Mapped[list[int] | None]
    inner_widths: Mapped[list[int] | None]
    candidates: Mapped[list[int] | None]
    gate_layers: Mapped[int | None] = mapped_column(Integer)
    flops: Mapped[int] = mapped_column(BigInteger)  # transformer layers, docs/method.md definition
    scoring_flops: Mapped[int] = mapped_column(BigInteger)
    params: Mapped[int] = mapped_column(BigInteger)
    supernet_flops: Mapped[int | None] = mapped_column(BigInteger)
    supernet_scoring_flops: Mapped[int | None] = mapped_column(BigInteger)
    supernet_params: Mapped[int | None] = mapped_column(BigInteger)

    run: Mapped[Run] = relationship(back_populates="architecture")


class Metric(Base):
    """One evaluated number: `test/pop100/ndcg@10` is split test, protocol pop100, metric ndcg, k 10."""

    __tablename__ = PREFIX + "metrics"
    __table_args__ = (Index(None, "split", "protocol", "metric", "k", "value"),)

    run_id: Mapped[int] = mapped_column(ForeignKey(Run.id, ondelete="CASCADE"), primary_key=True)
    split: Mapped[str] = mapped_column(String(32), primary_key=True)
    protocol: Mapped[str] = mapped_column(String(32), primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    k: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[float] = mapped_column(Float)

    run: Mapped[Run] = relationship(back_populates="metrics")


class SweepLease(Base):
    """Which driver drives a sweep: one row per sweep name, taken atomically when a driver starts, renewed by
    its heartbeat and deleted when it exits. A second driver finds the row unexpired and refuses; a driver
    killed without cleaning up leaves a row that expires, so a rerun takes over (dnsrec.sweep.lease)."""

    __tablename__ = PREFIX + "sweep_leases"

    sweep: Mapped[str] = mapped_column(String(200), primary_key=True)
    token: Mapped[str] = mapped_column(String(64))  # one driver's own random id: host and pid can repeat
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    acquired_at: Mapped[dt.datetime]
    heartbeat_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]


TABLES = tuple(sorted(Base.metadata.tables))
