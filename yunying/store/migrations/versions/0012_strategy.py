"""users.timezone index: segments read the distinct zones by skipping through it

Revision ID: 0012_strategy
Revises: 0011_strategy
"""

from __future__ import annotations

from alembic import op

revision = "0012_strategy"
down_revision = "0011_strategy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_users_timezone"), "users", ["timezone"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_users_timezone"), table_name="users")
