"""Initial schema: tenants, tokens, models, datasets, standards, certifications.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        _ts("created_at"),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        _ts("created_at"),
        _ts("revoked_at", nullable=True),
    )
    op.create_index("ix_api_tokens_tenant_id", "api_tokens", ["tenant_id"])
    for table, extra in (("models", [sa.Column("info", sa.JSON(), nullable=False)]),
                         ("datasets", [sa.Column("n_samples", sa.Integer(), nullable=False)])):
        op.create_table(
            table,
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("tenant_id", sa.Integer(),
                      sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
            sa.Column("sha256", sa.String(64), nullable=False),
            sa.Column("size", sa.BigInteger(), nullable=False),
            sa.Column("storage_key", sa.String(256), nullable=False),
            sa.Column("filename", sa.String(256), nullable=False),
            *extra,
            _ts("created_at"),
            sa.UniqueConstraint("tenant_id", "sha256", name=f"uq_{table}_tenant_sha256"),
        )
        op.create_index(f"ix_{table}_tenant_id", table, ["tenant_id"])
        op.create_index(f"ix_{table}_sha256", table, ["sha256"])
    op.create_table(
        "standards",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        _ts("created_at"),
    )
    op.create_index("ix_standards_name", "standards", ["name"])
    op.create_table(
        "certifications",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.Integer(), sa.ForeignKey("tenants.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("model_id", sa.Integer(), sa.ForeignKey("models.id"), nullable=False),
        sa.Column("dataset_id", sa.Integer(), sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("standard_id", sa.Integer(), sa.ForeignKey("standards.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(64), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("input_low", sa.Float(), nullable=True),
        sa.Column("input_high", sa.Float(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("scorecard", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        _ts("created_at"),
        _ts("started_at", nullable=True),
        _ts("finished_at", nullable=True),
        _ts("updated_at"),
    )
    op.create_index("ix_certifications_tenant_created", "certifications",
                    ["tenant_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_certifications_tenant_created", table_name="certifications")
    op.drop_table("certifications")
    op.drop_index("ix_standards_name", table_name="standards")
    op.drop_table("standards")
    for table in ("datasets", "models"):
        op.drop_index(f"ix_{table}_sha256", table_name=table)
        op.drop_index(f"ix_{table}_tenant_id", table_name=table)
        op.drop_table(table)
    op.drop_index("ix_api_tokens_tenant_id", table_name="api_tokens")
    op.drop_table("api_tokens")
    op.drop_table("tenants")
