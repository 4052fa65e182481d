"""Certificates: the signed envelope (signature, key id, signing time) beside each scorecard.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: certifications finished before signing existed have no certificate.
    with op.batch_alter_table("certifications") as batch:
        batch.add_column(sa.Column("certificate", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("certifications") as batch:
        batch.drop_column("certificate")
