"""Tenant-owned standards: ``standards.tenant_id`` (NULL = built-in), one document per
(tenant, name, version), built-ins unique by hash.

The global unique constraint on ``sha256`` goes: two tenants may upload the same document,
each as their own row.

Revises 0005, not 0003: 0005 was already committed on top of 0003, and a database migrated to
0005 must still receive this revision (re-chaining it below 0005 would skip it there).

Revision ID: 0004
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0005"
branch_labels = None
depends_on = None

# SQLite's unique constraint from 0001 has no name; batch mode names reflected ones by this.
_NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
_BUILTIN = "tenant_id IS NULL"


def upgrade() -> None:
    old = _sha256_unique_name()
    with op.batch_alter_table("standards", naming_convention=_NAMING) as batch:
        batch.drop_constraint(old, type_="unique")
        batch.add_column(sa.Column("tenant_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_standards_tenant", "tenants", ["tenant_id"], ["id"],
                                 ondelete="CASCADE")
        batch.create_unique_constraint("uq_standards_tenant_name_version",
                                       ["tenant_id", "name", "version"])
    op.create_index("uq_standards_builtin_sha256", "standards", ["sha256"], unique=True,
                    sqlite_where=sa.text(_BUILTIN), postgresql_where=sa.text(_BUILTIN))


def downgrade() -> None:
    bind = op.get_bind()
    owned = bind.execute(sa.text("SELECT COUNT(*) FROM standards WHERE tenant_id IS NOT NULL"))
    if owned.scalar():
        # Dropping them would also orphan the certifications that used them: refuse.
        raise RuntimeError("tenants own standards; downgrading below 0004 would lose them")
    op.drop_index("uq_standards_builtin_sha256", table_name="standards")
    with op.batch_alter_table("standards", naming_convention=_NAMING) as batch:
        batch.drop_constraint("uq_standards_tenant_name_version", type_="unique")
        batch.drop_constraint("fk_standards_tenant", type_="foreignkey")
        batch.drop_column("tenant_id")
        batch.create_unique_constraint("uq_standards_sha256", ["sha256"])


def _sha256_unique_name() -> str:
    """PostgreSQL named it standards_sha256_key; SQLite left it unnamed."""
    uniques = sa.inspect(op.get_bind()).get_unique_constraints("standards")
    name = next((u["name"] for u in uniques if u["column_names"] == ["sha256"]), None)
    return name or "uq_standards_sha256"
