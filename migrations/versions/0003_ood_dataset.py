"""An optional user-uploaded OOD set per certification (a dataset row holding only ``x``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("certifications") as batch:
        batch.add_column(sa.Column("ood_dataset_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_certifications_ood_dataset", "datasets",
                                 ["ood_dataset_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("certifications") as batch:
        batch.drop_constraint("fk_certifications_ood_dataset", type_="foreignkey")
        batch.drop_column("ood_dataset_id")
