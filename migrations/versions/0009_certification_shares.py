"""Certification shares: public, revocable badge links (dashboard branch, issue #17).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "certification_shares",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("certification_id", sa.String(36),
                  sa.ForeignKey("certifications.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_certification_shares_certification_id", "certification_shares",
                    ["certification_id"])
    op.create_index("ix_certification_shares_tenant_id", "certification_shares", ["tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_certification_shares_tenant_id", "certification_shares")
    op.drop_index("ix_certification_shares_certification_id", "certification_shares")
    op.drop_table("certification_shares")
