"""first run: the lifecycle settings each run used, and store-kept switches (sending)

Revision ID: 0008_first_run
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_first_run"
down_revision = "0006_payouts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("lifecycle_runs") as batch:
        batch.add_column(sa.Column("settings_fingerprint", sa.String(length=64), nullable=True))
    op.create_table(
        "store_switches",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_store_switches")),
    )


def downgrade() -> None:
    op.drop_table("store_switches")
    with op.batch_alter_table("lifecycle_runs") as batch:
        batch.drop_column("settings_fingerprint")
