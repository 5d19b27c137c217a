"""The append-only ledger and refunds.

Revision ID: payments_0003
Revises: payments_0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "payments_0003"
down_revision = "payments_0002"
branch_labels = None
depends_on = None

S = "payments"


def _tz(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("payment_id", UUID(as_uuid=False), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("id", UUID(as_uuid=False), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("booking_id", UUID(as_uuid=False), nullable=False),
        sa.Column("refund_id", UUID(as_uuid=False)),
        _tz("create_time"),
        sa.PrimaryKeyConstraint("payment_id", "seq", name="pk_ledger_entries"),
        sa.CheckConstraint("amount_minor > 0", name="ck_ledger_entries_amount_positive"),
        schema=S,
    )
    op.create_table(
        "refunds",
        sa.Column("id", UUID(as_uuid=False), nullable=False),
        sa.Column("payment_id", UUID(as_uuid=False), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("provider_reference", sa.String(100), nullable=False),
        _tz("create_time"),
        _tz("update_time"),
        sa.PrimaryKeyConstraint("id", name="pk_refunds"),
        sa.CheckConstraint("amount_minor > 0", name="ck_refunds_amount_positive"),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("refunds", schema=S)
    op.drop_table("ledger_entries", schema=S)
