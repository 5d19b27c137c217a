"""Append-only history of status changes (who, when, why).

Revision ID: booking_0004
Revises: booking_0003
"""

from alembic import op

revision = "booking_0004"
down_revision = "booking_0003"
branch_labels = None
depends_on = None


SQL = """
        CREATE TABLE booking.booking_history (
            booking_id uuid NOT NULL,
            seq smallint NOT NULL,
            from_status varchar(20),
            to_status varchar(20) NOT NULL,
            actor_id varchar(64) NOT NULL,
            reason varchar(500) NOT NULL,
            change_time timestamptz NOT NULL,
            CONSTRAINT pk_booking_history PRIMARY KEY (booking_id, seq)
        );
        """


def upgrade() -> None:
    for statement in SQL.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE booking.booking_history")
