"""The recipient's side: the store's signing key, topic opt-outs, provider callbacks, clicks,
and when the provider reported a message delivered.

Revision ID: 0009_web
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_web"
down_revision = "0010_cn_channels"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_store_secrets")),
    )
    op.create_table(
        "topic_suppressions",
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "topic", name=op.f("pk_topic_suppressions")),
    )
    op.create_table(
        "callback_events",
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", "event_id", name=op.f("pk_callback_events")),
    )
    op.create_table(
        "clicks",
        sa.Column(
            "outbox_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("link", sa.String(length=64), nullable=False),
        sa.Column("clicked_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("outbox_id", "link", name=op.f("pk_clicks")),
    )
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("delivered_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("delivered_at")
    op.drop_table("clicks")
    op.drop_table("callback_events")
    op.drop_table("topic_suppressions")
    op.drop_table("store_secrets")
