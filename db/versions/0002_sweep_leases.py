"""Sweep leases: one row per sweep naming the driver that drives it (host, pid, heartbeat, expiry).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Frozen copy of `dnsrec.results.models.SweepLease` at this revision (see 0001 for why the types are
written out). Two drivers on one sweep once both ran its trials; the lease makes the second refuse.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dnsrec_sweep_leases",
        sa.Column("sweep", sa.String(length=200), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("acquired_at", TIMESTAMP, nullable=False),
        sa.Column("heartbeat_at", TIMESTAMP, nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("sweep", name=op.f("pk_dnsrec_sweep_leases")),
    )


def downgrade() -> None:
    op.drop_table("dnsrec_sweep_leases")
