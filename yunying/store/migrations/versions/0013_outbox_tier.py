"""outbox.tier: the user's RFM tier when the row was planned, for the review's slices

Revision ID: 0013_outbox_tier
Revises: 0012_strategy
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_outbox_tier"
down_revision = "0012_strategy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable, and not backfilled: the tier a user had when an older row was planned is not
    # kept anywhere, and today's tier is what the column exists to avoid.
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("tier", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("tier")
