"""store_facts: what a store's data was made with, e.g. the time zone its days are in, so a
later change of setting that would mix two zones' days is refused

Revision ID: 0017_store_facts
Revises: 0016_outbox_handed_at
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_store_facts"
down_revision = "0016_outbox_handed_at"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_facts",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_store_facts")),
    )


def downgrade() -> None:
    op.drop_table("store_facts")
