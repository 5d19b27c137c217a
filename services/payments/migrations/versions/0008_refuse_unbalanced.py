"""A function that refuses a payment write whose balances disagree with its ledger.

The statement that saves a payment compares the payment's balances with its ledger (the entries
already there and the ones it adds) and calls this function when they disagree, so the whole
statement fails and nothing of it is written. That lets the save be a transaction of its own, sent
without BEGIN/COMMIT, and still never commit a payment out of step with its ledger.

Revision ID: payments_0008
Revises: payments_0007
"""

from alembic import op

revision = "payments_0008"
down_revision = "payments_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """CREATE FUNCTION payments.refuse_unbalanced(payment_id uuid, ledger text) RETURNS integer
           LANGUAGE plpgsql AS $$
           BEGIN
               RAISE EXCEPTION 'payment % balances disagree with its ledger (%)', payment_id, ledger
                   USING ERRCODE = 'check_violation';
           END $$"""
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION payments.refuse_unbalanced(uuid, text)")
