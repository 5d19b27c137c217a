"""The search in two set-based statements, whatever the number of places:

1. GROUPS_SQL: the distinct schedule groups (schedule + time zone, the stored `schedule_group`
   column) of the city's active places, by a loose scan of ix_places_search: one index probe per
   group, never one row per place. The service plans each group's candidate slots once.
2. PAGE_SQL: one keyset page of hits in the API's order (earliest free slot, rating descending,
   id). A place with no live entry around its group's first slots has exactly the group's first
   slots; those places are read in rank order from ix_places_search, `page size + 1` per group at
   most. The places with a live entry there (one scan of the partial GiST index on live `during`
   over the window) get their free slots computed in the statement, set-based: each candidate of
   their group, buffers included, against the units their entries take; the first `slots` free
   ones (the scan of candidates stops there). Only those that can still come before the page's
   last untouched hit are computed, so a first page does not pay for the whole city.

No array or range travels between Python and PostgreSQL (the groups go as one JSON document, free
slots come back as candidate numbers in text): asyncpg would introspect such types in the
transaction (16 catalog locks), and the search keeps to the 7 locks of places and calendar_entries
with their indexes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from availability.domain.calendar import SlotGroup

GROUPS_SQL = text(
    """
    WITH RECURSIVE keys AS (
        (SELECT schedule_group FROM availability.places
          WHERE lower(city) = lower(:city) AND active ORDER BY schedule_group LIMIT 1)
        UNION ALL
        SELECT (SELECT p.schedule_group FROM availability.places p
                 WHERE lower(p.city) = lower(:city) AND p.active AND p.schedule_group > keys.schedule_group
                 ORDER BY p.schedule_group LIMIT 1)
          FROM keys WHERE keys.schedule_group IS NOT NULL
    ), custom_plans AS (
        -- The page statement that follows in this transaction is planned for its own values: its
        -- best plan depends on them (how many places are touched), and a generic plan, which the
        -- statement cache switches to after five executions, reads every place of the city.
        -- Transaction-local, like SET LOCAL, without a round trip of its own.
        SELECT set_config('plan_cache_mode', 'force_custom_plan', true)
    )
    SELECT keys.schedule_group AS key, one.time_zone, one.schedule::text AS schedule_text
      FROM custom_plans, keys CROSS JOIN LATERAL (
               SELECT p.time_zone, p.schedule FROM availability.places p
                WHERE lower(p.city) = lower(:city) AND p.active AND p.schedule_group = keys.schedule_group
                LIMIT 1) one
     WHERE keys.schedule_group IS NOT NULL
    """
)

_FILTERS = """
    lower(p.city) = lower(:city) AND p.active
    AND p.capacity >= :min_capacity AND p.unit_count >= :units AND p.rating_average >= :min_rating
    AND (CAST(:min_price AS bigint) IS NULL OR (p.price_currency = :currency AND p.price_amount >= :min_price))
    AND (CAST(:max_price AS bigint) IS NULL OR (p.price_currency = :currency AND p.price_amount <= :max_price))
"""

_COLUMNS = """p.id, p.title, p.city, p.capacity, p.unit_count, p.price_amount, p.price_currency, p.rating_average,
              p.rating_count, p.time_zone, p.booking_mode, p.photo_urls->>0 AS cover_photo_url"""

PAGE_SQL = text(
    f"""
    WITH grp AS MATERIALIZED (
        SELECT g.key, g.first, g.open, g.after_rank, g.after_id, g.n,
               make_interval(secs => g.before_s) AS before, make_interval(secs => g.reach_s) AS reach,
               ARRAY(SELECT CAST(x.value AS timestamptz)
                       FROM jsonb_array_elements_text(g.starts) WITH ORDINALITY AS x(value, i) ORDER BY x.i) AS starts
          FROM jsonb_to_recordset(CAST(CAST(:groups AS text) AS jsonb))
               AS g(key uuid, first timestamptz, open boolean, after_rank float8, after_id uuid,
                    before_s float8, reach_s float8, n integer, starts jsonb)
    ), entries AS MATERIALIZED (
        -- Live, unexpired entries of the searched span: one scan of the partial GiST index.
        SELECT e.place_id, e.unit, e.during FROM availability.calendar_entries e
         WHERE e.live AND e.during && tstzrange(:full_lo, :full_hi)
           AND (e.expires_at IS NULL OR e.expires_at > :now)
    ), touched AS MATERIALIZED (
        -- Places with an entry around the first slots of the groups.
        SELECT DISTINCT place_id FROM entries WHERE during && tstzrange(:clear_lo, :clear_hi)
    ), clear_hits AS (
        -- Every other place of a group has the group's first slots: read in rank order, after the
        -- page's position, at most a page per group.
        SELECT c.*, g.first, CAST(NULL AS text) AS free, g.n AS grp
          FROM grp g CROSS JOIN LATERAL (
                   SELECT {_COLUMNS} FROM availability.places p
                    WHERE p.schedule_group = g.key AND (-p.rating_average, p.id) > (g.after_rank, g.after_id)
                      AND {_FILTERS}
                      AND p.id NOT IN (SELECT place_id FROM touched)
                    ORDER BY -p.rating_average, p.id
                    LIMIT :size) c
         WHERE g.open
    ), bound AS (
        -- The last hit the page can take if untouched places fill it: a touched place comes
        -- before it only if its group's first slot (its earliest possible), rank and id do.
        SELECT first, -rating_average AS rank, id FROM clear_hits
         ORDER BY first, -rating_average, id OFFSET CAST(:size AS integer) - 1 LIMIT 1
    ), near AS (
        -- Touched places of the city that may be on the page.
        SELECT {_COLUMNS}, g.n AS grp, g.starts, g.before, g.reach
          FROM availability.places p
          JOIN grp g ON g.key = p.schedule_group
         WHERE p.id = ANY (ARRAY(SELECT place_id FROM touched)) AND {_FILTERS}
           AND (NOT EXISTS (SELECT FROM bound)
                OR (g.first, -p.rating_average, p.id) < (SELECT first, rank, id FROM bound))
    ), busy AS (
        -- ... with their entries of the span (two parallel arrays).
        SELECT n.*, e.during, e.units
          FROM near n
          JOIN (SELECT place_id, array_agg(during) AS during, array_agg(unit) AS units FROM entries
                 WHERE place_id IN (SELECT id FROM near) GROUP BY place_id) e ON e.place_id = n.id
    ), busy_hits AS (
        -- Free slots of a touched place: the group's candidates, in order, that leave `units` of
        -- its units untouched, buffers included; the first :slots of them (by number).
        SELECT b.id, b.title, b.city, b.capacity, b.unit_count, b.price_amount, b.price_currency,
               b.rating_average, b.rating_count, b.time_zone, b.booking_mode, b.cover_photo_url,
               b.starts[f.numbers[1]] AS first, array_to_string(f.numbers, ',') AS free, b.grp
          FROM busy b
          CROSS JOIN LATERAL (
              SELECT array_agg(c.i ORDER BY c.i) AS numbers FROM (
                  -- generate_series yields the candidates in order: LIMIT stops at the first :slots.
                  SELECT i FROM generate_series(1, cardinality(b.starts)) i
                   WHERE (SELECT count(DISTINCT x.unit) FROM unnest(b.during, b.units) AS x(during, unit)
                           WHERE x.unit < b.unit_count
                             AND x.during && tstzrange(b.starts[i] - b.before, b.starts[i] + b.reach))
                         <= b.unit_count - :units
                   LIMIT :slots) c
          ) f
         WHERE f.numbers IS NOT NULL
    )
    SELECT CAST(id AS text), title, city, capacity, price_amount, price_currency, rating_average, rating_count,
           time_zone, booking_mode, coalesce(cover_photo_url, ''), grp, free
      FROM (
        SELECT * FROM clear_hits
        UNION ALL
        SELECT * FROM busy_hits
         WHERE NOT CAST(:has_position AS boolean)
            OR (first, -rating_average, id) > (:position_first, :position_rank, CAST(:position_id AS uuid))
    ) hits
     ORDER BY first, -rating_average, id
     LIMIT :size
    """
)


@dataclass
class Group:
    key: str
    time_zone: str
    schedule_text: str


# The place fields of a hit, in the order PAGE_SQL returns them.
SUMMARY_FIELDS = (
    "id",
    "title",
    "city",
    "capacity",
    "price_amount",
    "price_currency",
    "rating_average",
    "rating_count",
    "time_zone",
    "booking_mode",
    "cover_photo_url",
)


@dataclass
class SearchRow:
    place: dict  # SUMMARY_FIELDS -> value
    group: int  # index into the groups passed to `page`
    free: list[int] | None  # indexes of the free candidates of the group; None: its first ones


class SqlAlchemySearch:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def groups(self, city: str) -> list[Group]:
        rows = await self.session.execute(GROUPS_SQL, {"city": city})
        return [Group(str(r.key), r.time_zone, r.schedule_text) for r in rows]

    async def page(
        self,
        groups: list[tuple[str, SlotGroup]],
        city: str,
        min_capacity: int,
        min_rating: float,
        currency: str | None,
        min_price: int | None,
        max_price: int | None,
        now: datetime,
        units: int,
        slots: int,
        size: int,
        position: tuple[datetime, float, str] | None,
    ) -> list[SearchRow]:
        """The `size` first hits after `position` (first slot, rating, id) in the API's order, for
        the given (schedule group key, slot group) pairs."""
        plans = []
        for n, (key, group) in enumerate(groups, start=1):
            first = group.candidates[0].start
            # The keyset of the group's untouched places, which all share its first slot: after
            # the position's (rank, id) when the position is at that slot, from the top when later.
            same = position is not None and first == position[0]
            plans.append(
                {
                    "key": key,
                    "first": first.isoformat(),
                    "open": position is None or first >= position[0],
                    "after_rank": -position[1] if same else BELOW_ANY_RANK,
                    "after_id": position[2] if same else NIL_UUID,
                    "before_s": (group.candidates[0].start - group.guarded[0].start).total_seconds(),
                    "reach_s": (group.guarded[0].end - group.candidates[0].start).total_seconds(),
                    "n": n,
                    "starts": [c.start.isoformat() for c in group.candidates],
                }
            )
        rows = await self.session.execute(
            PAGE_SQL,
            {
                "groups": json.dumps(plans),
                "full_lo": min(g.full.start for _, g in groups),
                "full_hi": max(g.full.end for _, g in groups),
                "clear_lo": min(g.clear.start for _, g in groups),
                "clear_hi": max(g.clear.end for _, g in groups),
                "city": city,
                "min_capacity": min_capacity,
                "min_rating": min_rating,
                "currency": currency,
                "min_price": min_price,
                "max_price": max_price,
                "now": now,
                "units": units,
                "slots": slots,
                "size": size,
                "has_position": position is not None,
                "position_first": position[0] if position else now,
                "position_rank": -position[1] if position else 0.0,
                "position_id": position[2] if position else NIL_UUID,
            },
        )
        found = []
        for *place, group, free in rows:
            numbers = None if free is None else [int(i) - 1 for i in free.split(",")]
            found.append(SearchRow(dict(zip(SUMMARY_FIELDS, place, strict=True)), group - 1, numbers))
        return found


NIL_UUID = "00000000-0000-0000-0000-000000000000"
BELOW_ANY_RANK = -1.0e300  # below every -rating_average: a group read from its top
