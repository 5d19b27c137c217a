"""Payments and the reconciler's list of unsettled payments.

Revision ID: payments_0002
Revises: payments_0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "payments_0002"
down_revision = "payments_0001"
branch_labels = None
depends_on = None

S = "payments"


def _tz(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("id", UUID(as_uuid=False), nullable=False),
        sa.Column("booking_id", UUID(as_uuid=False), nullable=False),
        sa.Column("user_id", UUID(as_uuid=False), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("authorized_amount", sa.BigInteger(), nullable=False),
        sa.Column("captured_amount", sa.BigInteger(), nullable=False),
        sa.Column("refunded_amount", sa.BigInteger(), nullable=False),
        sa.Column("refund_pending_amount", sa.BigInteger(), nullable=False),
        sa.Column("pending_operation", sa.String(16)),
        sa.Column("pending_amount", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("failure_reason", sa.String(64), nullable=False),
        sa.Column("provider_reference", sa.String(100), nullable=False),
        _tz("authorization_expire_time", nullable=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        _tz("create_time"),
        _tz("update_time"),
        sa.Column("ledger_seq", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_payments"),
        sa.CheckConstraint("amount_minor > 0", name="ck_payments_amount_positive"),
        sa.CheckConstraint(
            "authorized_amount >= 0 AND refunded_amount >= 0 AND refund_pending_amount >= 0",
            name="ck_payments_balances_non_negative",
        ),
        sa.CheckConstraint(
            "refunded_amount + refund_pending_amount <= captured_amount", name="ck_payments_refunds_within_capture"
        ),
        sa.CheckConstraint("authorized_amount + captured_amount <= amount_minor", name="ck_payments_within_amount"),
        schema=S,
    )
    op.create_index("ix_payments_booking_id_create_time_id", "payments", ["booking_id", "create_time", "id"], schema=S)
    op.create_index("ix_payments_user_id_create_time_id", "payments", ["user_id", "create_time", "id"], schema=S)
    op.create_table(
        "unsettled_payments",
        sa.Column("payment_id", UUID(as_uuid=False), nullable=False),
        _tz("since"),
        sa.PrimaryKeyConstraint("payment_id", name="pk_unsettled_payments"),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("unsettled_payments", schema=S)
    op.drop_table("payments", schema=S)
