"""rejected_records.raw_hash: a rejected row is kept once per source

Revision ID: 0014_rejects_key
Revises: 0013_outbox_tier
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0014_rejects_key"
down_revision = "0013_outbox_tier"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("rejected_records", sa.Column("raw_hash", sa.String(length=64), nullable=True))
    # The key the pull computes (yunying.sources.write.marks.raw_hash): SHA-256 of the UTF-8 text.
    if bind.dialect.name == "postgresql":
        digest = "encode(sha256(convert_to(raw, 'UTF8')), 'hex')"
    else:
        bind.connection.driver_connection.create_function(  # type: ignore[union-attr]
            "yunying_sha256",
            1,
            lambda raw: hashlib.sha256(raw.encode("utf-8")).hexdigest(),
            deterministic=True,
        )
        digest = "yunying_sha256(raw)"
    op.execute(f"UPDATE rejected_records SET raw_hash = {digest}")
    # The rows earlier pulls set aside again: the first of each is kept.
    op.execute(
        "DELETE FROM rejected_records WHERE id NOT IN"
        " (SELECT MIN(id) FROM rejected_records GROUP BY source, raw_hash)"
    )
    with op.batch_alter_table("rejected_records") as batch:
        batch.alter_column("raw_hash", existing_type=sa.String(length=64), nullable=False)
    op.create_index(
        "uq_rejected_records_source_raw_hash",
        "rejected_records",
        ["source", "raw_hash"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_rejected_records_source_raw_hash", table_name="rejected_records")
    with op.batch_alter_table("rejected_records") as batch:
        batch.drop_column("raw_hash")
