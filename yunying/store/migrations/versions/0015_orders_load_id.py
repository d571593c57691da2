"""orders: no index on load_id: only the orders' fold read it, and it now reads the batch

Revision ID: 0015_orders_load_id
Revises: 0014_rejects_key
"""

from __future__ import annotations

from alembic import op

revision = "0015_orders_load_id"
down_revision = "0014_rejects_key"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index(op.f("ix_orders_load_id"), table_name="orders")


def downgrade() -> None:
    op.create_index(op.f("ix_orders_load_id"), "orders", ["load_id"], unique=False)
