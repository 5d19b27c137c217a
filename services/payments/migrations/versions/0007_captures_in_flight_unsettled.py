"""Captures in flight on the reconciler's list.

A capture is now on payments.unsettled_payments from its reservation until its answer is recorded
(Payment.needs_reconciliation), so that one whose recording never happens (the process died, or its
transaction was cut) is settled by the reconciler. This puts the captures already in flight, or left
in progress before this version, on the list. Data only.

Revision ID: payments_0007
Revises: payments_0006
"""

from alembic import op

revision = "payments_0007"
down_revision = "payments_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """INSERT INTO payments.unsettled_payments (payment_id, since)
           SELECT id, update_time FROM payments.payments WHERE pending_operation = 'capture'
           ON CONFLICT DO NOTHING"""
    )


def downgrade() -> None:
    # Off the list again what the earlier version does not settle: an AUTHORIZED payment with a
    # capture in flight and no requested void.
    op.execute(
        """DELETE FROM payments.unsettled_payments u USING payments.payments p
            WHERE p.id = u.payment_id AND p.status = 'authorized' AND p.pending_operation = 'capture'
              AND NOT p.void_requested"""
    )
