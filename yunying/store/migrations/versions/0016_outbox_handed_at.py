"""outbox.handed_at: when a claimed message was handed to a provider that takes no
idempotency key, so a crash leaves unknown only what was handed, and the rest is resent

Revision ID: 0016_outbox_handed_at
Revises: 0015_orders_load_id
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_outbox_handed_at"
down_revision = "0015_orders_load_id"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("handed_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("handed_at")
