"""Decision commitment: `dnsrec_runs.decision_width_p`, `decision_depth_q`, `decision_settled_epochs`.

How firmly a search decided (dnsrec.nas.commitment), so "did the controllers commit?" is a query, not a
reading of result.json. They come from the search trajectory in result.json, which the database does not
hold, so rows recorded before this revision keep NULL until `dnsrec results ingest` of their run
directories records them again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

COLUMNS = (
    ("decision_width_p", sa.Float()),
    ("decision_depth_q", sa.Float()),
    ("decision_settled_epochs", sa.Integer()),
)


def upgrade() -> None:
    with op.batch_alter_table("dnsrec_runs", schema=None) as batch_op:
        for name, kind in COLUMNS:
            batch_op.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dnsrec_runs", schema=None) as batch_op:
        for name, _ in reversed(COLUMNS):
            batch_op.drop_column(name)
