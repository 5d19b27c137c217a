"""The sandbox card processor's own record of charges.

Revision ID: payments_0005
Revises: payments_0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "payments_0005"
down_revision = "payments_0004"
branch_labels = None
depends_on = None

S = "payments"


def upgrade() -> None:
    op.create_table(
        "sandbox_charges",
        sa.Column("reference", sa.String(40), nullable=False),
        sa.Column("idempotency_key", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("captured_minor", sa.BigInteger(), nullable=False),
        sa.Column("refunded_minor", sa.BigInteger(), nullable=False),
        sa.Column("failure_code", sa.String(64), nullable=False),
        sa.Column("operation_keys", JSONB(), nullable=False),
        sa.Column("authorization_expire_time", sa.DateTime(timezone=True)),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("reference", name="pk_sandbox_charges"),
        sa.UniqueConstraint("idempotency_key", name="uq_sandbox_charges_idempotency_key"),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("sandbox_charges", schema=S)
