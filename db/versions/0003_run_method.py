"""Run method: `dnsrec_runs.method`, the search method or model family that produced a run, filled for old rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Without it a DARTS run and a DNS-Rec run (or an FDSA and a SASRec model) looked the same in `dnsrec results
list`. Existing rows are filled from their stored `config` in Python, not SQL: reading a JSON key, and telling
an absent key from a JSON null, is spelled differently on every backend, while one Python rule reads the same
on all of them. `alembic upgrade --sql` (offline, no rows to read) only adds the column; `dnsrec results
ingest` of the run directories fills it later.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
RUNS = sa.table(
    "dnsrec_runs",
    sa.column("id", sa.Integer()),
    sa.column("stage", sa.String()),
    sa.column("config", JSON),
    sa.column("method", sa.String()),
)


def method_of(config: Any, stage: Any) -> str | None:
    """Frozen copy of `dnsrec.results.extract.method_of` at this revision (a migration never imports the
    package, whose rule may change later): `search.method` (absent: dnsrec, the only method before the key
    existed), else `model.family` (absent: sasrec), else None. A `retrain` row gets None: what searched its
    architecture file is not in the row (its config's search.method is a default nobody used)."""
    if stage == "retrain":
        return None
    search, model = (config.get("search"), config.get("model")) if isinstance(config, dict) else (None, None)
    if isinstance(search, dict):
        found = search.get("method", "dnsrec")
    elif isinstance(model, dict):
        found = model.get("family", "sasrec")
    else:
        return None
    return found if isinstance(found, str) else None


def upgrade() -> None:
    with op.batch_alter_table("dnsrec_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("method", sa.String(length=16), nullable=True))
    if context.is_offline_mode():
        return
    bind = op.get_bind()
    filled = [
        {"run_id": run_id, "value": value}
        for run_id, stage, config in bind.execute(sa.select(RUNS.c.id, RUNS.c.stage, RUNS.c.config)).all()
        if (value := method_of(config, stage)) is not None
    ]
    if filled:  # one executemany: no IN list to outgrow a backend's limit on bound parameters
        update = sa.update(RUNS).where(RUNS.c.id == sa.bindparam("run_id")).values(method=sa.bindparam("value"))
        bind.execute(update, filled)


def downgrade() -> None:
    with op.batch_alter_table("dnsrec_runs", schema=None) as batch_op:
        batch_op.drop_column("method")
