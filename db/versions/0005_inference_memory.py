"""Inference memory: `dnsrec_runs.inference_memory_mb`.

The memory that scoring the test users needs (the model's weights plus the most tensor memory alive at once:
dnsrec.measure.inference_memory_mb), the paper's Table 4 memory, apart from `peak_memory_mb` (the whole run's
peak, training and search included). Rows of results written before it was measured keep NULL.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("dnsrec_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inference_memory_mb", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dnsrec_runs", schema=None) as batch_op:
        batch_op.drop_column("inference_memory_mb")
