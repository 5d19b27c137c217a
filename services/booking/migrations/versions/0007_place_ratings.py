"""Rating aggregates per place, updated incrementally.

Revision ID: booking_0007
Revises: booking_0006
"""

from alembic import op

revision = "booking_0007"
down_revision = "booking_0006"
branch_labels = None
depends_on = None


SQL = """
        CREATE TABLE booking.place_ratings (
            place_id uuid PRIMARY KEY,
            rating_sum bigint NOT NULL,
            rating_count integer NOT NULL CHECK (rating_count >= 0)
        );
        """


def upgrade() -> None:
    for statement in SQL.split(";"):
        if statement.strip():
            op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE booking.place_ratings")
