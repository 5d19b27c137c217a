"""Idempotency keys and processed provider webhook events.

Revision ID: payments_0004
Revises: payments_0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "payments_0004"
down_revision = "payments_0003"
branch_labels = None
depends_on = None

S = "payments"


def _tz(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resource_id", UUID(as_uuid=False)),
        sa.Column("result", JSONB()),
        _tz("create_time"),
        _tz("update_time"),
        sa.PrimaryKeyConstraint("request_id", "operation", name="pk_idempotency_keys"),
        schema=S,
    )
    op.create_table(
        "provider_events",
        sa.Column("event_id", sa.String(100), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("payment_id", UUID(as_uuid=False)),
        _tz("received_time"),
        sa.PrimaryKeyConstraint("event_id", name="pk_provider_events"),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("provider_events", schema=S)
    op.drop_table("idempotency_keys", schema=S)
