"""Sharded jobs: per-part results keyed by (job, part), and the plan's bookkeeping.

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "certification_parts",
        sa.Column("job_id", sa.String(36),
                  sa.ForeignKey("certifications.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("part", sa.String(32), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("worker", sa.String(128), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("certifications") as batch:
        batch.add_column(sa.Column("shards_total", sa.Integer(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("certifications") as batch:
        batch.drop_column("shards_total")
    op.drop_table("certification_parts")
