"""Reviews of completed bookings, one per booking.

Revision ID: booking_0006
Revises: booking_0005
"""

from alembic import op

revision = "booking_0006"
down_revision = "booking_0005"
branch_labels = None
depends_on = None


SQL = """
        CREATE TABLE booking.reviews (
            id uuid PRIMARY KEY,
            booking_id uuid NOT NULL,
            place_id uuid NOT NULL,
            client_id uuid NOT NULL,
            host_id uuid NOT NULL,
            rating smallint NOT NULL CHECK (rating BETWEEN 1 AND 5),
            text text NOT NULL,
            reply jsonb,
            hidden boolean NOT NULL DEFAULT false,
            hide_reason varchar(500) NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            CONSTRAINT uq_reviews_booking_id UNIQUE (booking_id)
        );
        CREATE INDEX ix_reviews_place_id_created_at_id ON booking.reviews (place_id, created_at, id);
        """


def upgrade() -> None:
    for statement in SQL.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE booking.reviews")
