"""segment_sizes (users per segment file and date); outbox.variant

Revision ID: 0011_strategy
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_strategy"
down_revision = "0009_web"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segment_sizes",
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=False),
        sa.Column("users", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("segment", "business_date", name=op.f("pk_segment_sizes")),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("variant", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("variant")
    op.drop_table("segment_sizes")
