"""Holds and blocks (the owners of calendar rows).

Revision ID: availability_0003
Revises: availability_0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "availability_0003"
down_revision = "availability_0002"
branch_labels = None
depends_on = None

S = "availability"


def upgrade() -> None:
    op.create_table(
        "holds",
        sa.Column("id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("place_id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("booking_id", sa.String(64), nullable=False),
        sa.Column("holder_id", sa.String(64), nullable=False),
        sa.Column("ranges", postgresql.JSONB(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_holds"),
        sa.UniqueConstraint("request_id", name="uq_holds_request_id"),
        sa.CheckConstraint("kind IN ('hold', 'block')", name="ck_holds_kind"),
        sa.CheckConstraint(
            "state IN ('held', 'confirmed', 'released', 'expired', 'active', 'removed')", name="ck_holds_state"
        ),
        schema=S,
    )
    op.create_index("ix_holds_expiring", "holds", ["expires_at"], schema=S, postgresql_where=sa.text("state = 'held'"))


def downgrade() -> None:
    op.drop_table("holds", schema=S)
