"""events: no b-tree on user_id; on PostgreSQL a BRIN index on occurred_at

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_events_user_id", table_name="events")
    if op.get_bind().dialect.name == "postgresql":
        op.create_index("ix_events_occurred_at", "events", ["occurred_at"], postgresql_using="brin")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_events_occurred_at", table_name="events")
    op.create_index("ix_events_user_id", "events", ["user_id"])
