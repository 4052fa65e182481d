"""Job liveness: delivery attempts, the worker's heartbeat and its identity.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certifications") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("worker", sa.String(128), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("certifications") as batch:
        batch.drop_column("worker")
        batch.drop_column("heartbeat_at")
        batch.drop_column("attempts")
