"""Idempotency keys of mutating calls: request id (scoped by operation and caller) and fingerprint.

Revision ID: booking_0005
Revises: booking_0004
"""

from alembic import op

revision = "booking_0005"
down_revision = "booking_0004"
branch_labels = None
depends_on = None


SQL = """
        CREATE TABLE booking.idempotency (
            key varchar(200) PRIMARY KEY,
            fingerprint varchar(64) NOT NULL,
            resource_id varchar(64) NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        """


def upgrade() -> None:
    for statement in SQL.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE booking.idempotency")
