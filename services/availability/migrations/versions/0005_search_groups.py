"""Search by schedule group: places sharing a schedule and time zone share their candidate slots,
so the search plans slots once per group and reads places of a group in rank order from an index.

`schedule_group` is a stored generated column (PostgreSQL keeps it right on every write); the new
index replaces ix_places_city_key (its leading columns serve the same city listings), so every
statement on `places` keeps the lock count it had.

Revision ID: availability_0005
Revises: availability_0004
"""

from alembic import op

revision = "availability_0005"
down_revision = "availability_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE availability.places ADD COLUMN schedule_group uuid "
        "GENERATED ALWAYS AS (md5(time_zone || ' ' || schedule::text)::uuid) STORED NOT NULL"
    )
    op.execute(
        "CREATE INDEX ix_places_search ON availability.places "
        "(lower(city), active, schedule_group, (-rating_average), id)"
    )
    op.execute("DROP INDEX availability.ix_places_city_key")


def downgrade() -> None:
    op.execute("CREATE INDEX ix_places_city_key ON availability.places (lower(city), active)")
    op.execute("DROP INDEX availability.ix_places_search")
    op.execute("ALTER TABLE availability.places DROP COLUMN schedule_group")
