"""Places and the idempotency keys of place and rating mutations.

Revision ID: availability_0002
Revises: availability_0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "availability_0002"
down_revision = "availability_0001"
branch_labels = None
depends_on = None

S = "availability"


def upgrade() -> None:
    op.create_table(
        "places",
        sa.Column("id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("owner_id", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("city", sa.String(100), nullable=False),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("unit_count", sa.Integer(), nullable=False),
        sa.Column("price_amount", sa.BigInteger(), nullable=False),
        sa.Column("price_currency", sa.String(3), nullable=False),
        sa.Column("time_zone", sa.String(64), nullable=False),
        sa.Column("booking_mode", sa.String(10), nullable=False),
        sa.Column("photo_urls", postgresql.JSONB(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("rating_sum", sa.BigInteger(), nullable=False),
        sa.Column("rating_count", sa.Integer(), nullable=False),
        sa.Column("rating_average", sa.Double(), nullable=False),
        sa.Column("deposit_policy", postgresql.JSONB(), nullable=False),
        sa.Column("cancellation_policy", postgresql.JSONB(), nullable=False),
        sa.Column("schedule", postgresql.JSONB(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("update_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("id", name="pk_places"),
        sa.CheckConstraint("capacity BETWEEN 1 AND 10000", name="ck_places_capacity"),
        sa.CheckConstraint("unit_count BETWEEN 1 AND 1000", name="ck_places_unit_count"),
        sa.CheckConstraint("price_amount >= 0", name="ck_places_price"),
        sa.CheckConstraint("rating_count >= 0", name="ck_places_rating_count"),
        schema=S,
    )
    op.execute("CREATE INDEX ix_places_city_key ON availability.places (lower(city), active)")
    op.create_table(
        "requests",
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(40), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("request_id", name="pk_requests"),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("requests", schema=S)
    op.drop_table("places", schema=S)
