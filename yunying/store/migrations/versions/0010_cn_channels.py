"""WeChat: users.openid and users.wechat_opt_in; provider_tokens, the access tokens all
workers share

Revision ID: 0010_cn_channels
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_cn_channels"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as users:
        users.add_column(sa.Column("openid", sa.String(length=64), nullable=True))
        # No recorded consent, no WeChat message: existing users start opted out.
        users.add_column(
            sa.Column("wechat_opt_in", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "provider_tokens",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("fetches", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_provider_tokens")),
    )


def downgrade() -> None:
    op.drop_table("provider_tokens")
    with op.batch_alter_table("users") as users:
        users.drop_column("wechat_opt_in")
        users.drop_column("openid")
