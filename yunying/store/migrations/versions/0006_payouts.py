"""payouts: approved plans, append-only publications, payout attempts, who started a run

Revision ID: 0006_payouts
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_payouts"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reward_plans",
        sa.Column("campaign", sa.String(length=100), nullable=False),
        sa.Column("plan_hash", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("approver", sa.String(length=200), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=True),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column("approved_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("campaign", name=op.f("pk_reward_plans")),
    )
    op.create_table(
        "reward_publications",
        sa.Column("campaign", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("campaign", "kind", "version", name=op.f("pk_reward_publications")),
    )
    with op.batch_alter_table("reward_ledger", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="1", nullable=False))
    with op.batch_alter_table("reward_approvals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requested_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("refusal", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reward_approvals", schema=None) as batch_op:
        batch_op.drop_column("refusal")
        batch_op.drop_column("requested_by")
    with op.batch_alter_table("reward_ledger", schema=None) as batch_op:
        batch_op.drop_column("attempts")
    op.drop_table("reward_publications")
    op.drop_table("reward_plans")
