"""Requested voids and the reconciler's list of pending refunds.

- payments.void_requested / void_reason: a void asked for while the authorization's outcome is not
  known (or whose own answer was lost); the reconciler carries it out once the provider answers.
- refunds: a partial index of the refunds still PENDING (their provider call unanswered), the
  reconciler's work list; it holds only the few refunds in flight.
- sandbox_charges.test_behaviours: what the sandbox does with a charge's later voids and refunds
  (from the test token, e.g. "tok_success+refund_timeout").

Revision ID: payments_0006
Revises: payments_0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "payments_0006"
down_revision = "payments_0005"
branch_labels = None
depends_on = None

S = "payments"


def upgrade() -> None:
    op.add_column(
        "payments", sa.Column("void_requested", sa.Boolean(), nullable=False, server_default=sa.false()), schema=S
    )
    op.add_column("payments", sa.Column("void_reason", sa.String(500), nullable=False, server_default=""), schema=S)
    op.create_index(
        "ix_refunds_pending_create_time",
        "refunds",
        ["create_time"],
        schema=S,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.add_column(
        "sandbox_charges",
        sa.Column("test_behaviours", JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        schema=S,
    )


def downgrade() -> None:
    op.drop_column("sandbox_charges", "test_behaviours", schema=S)
    op.drop_index("ix_refunds_pending_create_time", table_name="refunds", schema=S)
    op.drop_column("payments", "void_reason", schema=S)
    op.drop_column("payments", "void_requested", schema=S)
