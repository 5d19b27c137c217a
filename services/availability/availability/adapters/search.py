"""The search in two set-based statements, whatever the number of places:

1. GROUPS_SQL: the distinct schedule groups (schedule + time zone, the stored `schedule_group`
   column) of the city's active places, by a loose scan of ix_places_search: one index probe per
   group, never one row per place. The service plans each group's candidate slots once.
2. PAGE_SQL: one keyset page of hits in the API's order (earliest free slot, rating descending,
   id). The places free at their group's first slot are read in rank order from ix_places_search
   after the page's position, `page size + 1` per group at most: a place with no live entry
   around the group's first slots (one scan of the partial GiST index on live `during`) has
   exactly those slots; one of a single unit taken at the first slot is skipped by a hash
   lookup; any other touched place gets its free slots by probes of the exclusion constraint's
   index. Touched places whose first free slot is a later one are read from the entries' side,
   and only once the page can reach a group's second slot (the last pages): a page costs about a
   page of places, never the whole city per page.

Both run as plain SQL on the unit of work's asyncpg connection (kit.sql: prepared once per
connection, no SQLAlchemy per statement or per row), and the page's rows are what the reply needs.
The groups statement also sets, for its transaction, a generic plan for the page statement (no
planning per page), no avoidable sorts (so that plan reads the index in rank order and stops at
the page, whatever the page size) and no JIT (a few milliseconds of work never repays a
compilation).

No array or range travels between Python and PostgreSQL (the groups go as one JSON document, free
slots come back as candidate numbers in text): asyncpg would introspect such types in the
transaction (16 catalog locks), and the search keeps to the 7 locks of places and calendar_entries
with their indexes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from availability.domain.calendar import SlotGroup


def _positional(sql: str) -> tuple[str, list[str]]:
    """`:name` parameters as asyncpg's `$n` (in order of first use) and the names in that order."""
    names: list[str] = []

    def number(match: re.Match) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return re.sub(r"(?<![:\w]):([a-z_]+)", number, sql), names


GROUPS_SQL, _GROUPS_PARAMS = _positional(
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
        -- The page statement that follows in this transaction runs its generic plan (planning it
        -- per page cost more than running it), without JIT, and without sorts it can avoid: not
        -- knowing the page size, the generic plan would otherwise read every place of a group
        -- and sort them (2.7 ms for a page of 50 here) instead of reading ix_places_search in rank
        -- order and stopping at the page (0.9 ms). Transaction-local, like SET LOCAL, without a
        -- round trip of its own.
        SELECT set_config('plan_cache_mode', 'force_generic_plan', true), set_config('jit', 'off', true),
               set_config('enable_sort', 'off', true)
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

PAGE_SQL, _PAGE_PARAMS = _positional(
    f"""
    WITH grp AS MATERIALIZED (
        SELECT g.key, g.first, g.second, g.open, g.after_rank, g.after_id, g.n,
               make_interval(secs => g.before_s) AS before, make_interval(secs => g.reach_s) AS reach,
               tstzrange(g.first - make_interval(secs => g.before_s), g.first + make_interval(secs => g.reach_s))
                   AS first_guard,
               ARRAY(SELECT CAST(x.value AS timestamptz)
                       FROM jsonb_array_elements_text(g.starts) WITH ORDINALITY AS x(value, i) ORDER BY x.i) AS starts
          FROM jsonb_to_recordset(CAST(CAST(:groups AS text) AS jsonb))
               AS g(key uuid, first timestamptz, second timestamptz, open boolean, after_rank float8, after_id uuid,
                    before_s float8, reach_s float8, n integer, starts jsonb)
    ), touched AS MATERIALIZED (
        -- Live, unexpired entries around the first slots of the groups: one scan of the partial
        -- GiST index (everything read from the index).
        SELECT e.place_id, e.unit, e.during FROM availability.calendar_entries e
         WHERE e.live AND e.during && tstzrange(:clear_lo, :clear_hi)
           AND (e.expires_at IS NULL OR e.expires_at > :now)
    ), taken_first AS (
        -- (place, group) pairs whose unit 0 is taken at the group's first slot: for a place of one
        -- unit, that slot is not free (a place of several is probed below).
        SELECT t.place_id, g.n FROM grp g JOIN touched t ON t.during && g.first_guard WHERE t.unit = 0
    ), first_hits AS (
        -- Places free at their group's first slot, in rank order after the page's position, at most
        -- a page per group. An untouched place has the group's first slots; a touched one gets its
        -- own (probes of the exclusion constraint's index: a candidate each, from the first until
        -- :slots are free).
        SELECT c.* FROM grp g CROSS JOIN LATERAL (
            SELECT {_COLUMNS}, g.first, f.free, g.n AS grp
              FROM availability.places p
              CROSS JOIN LATERAL (
                  SELECT CASE WHEN p.id IN (SELECT place_id FROM touched) THEN (
                      SELECT coalesce(string_agg(CAST(c.i AS text), ',' ORDER BY c.i), '') FROM (
                          SELECT x.i FROM unnest(g.starts) WITH ORDINALITY AS x(start, i)
                           WHERE (SELECT count(DISTINCT e.unit) FROM availability.calendar_entries e
                                   WHERE e.place_id = p.id AND e.live AND e.unit < p.unit_count
                                     AND e.during && tstzrange(x.start - g.before, x.start + g.reach)
                                     AND (e.expires_at IS NULL OR e.expires_at > :now))
                                 <= p.unit_count - :units
                           LIMIT :slots) c)
                  END AS free
                  OFFSET 0) f
             WHERE p.schedule_group = g.key AND (-p.rating_average, p.id) > (g.after_rank, g.after_id)
               AND {_FILTERS}
               AND (p.unit_count > 1 OR (p.id, g.n) NOT IN (SELECT place_id, n FROM taken_first))
               AND (f.free IS NULL OR left(f.free, 2) IN ('1', '1,'))
             ORDER BY -p.rating_average, p.id
             LIMIT :size) c
         WHERE g.open
    ), bound AS (
        -- The last hit the page can take if first-slot places fill it.
        SELECT first FROM first_hits ORDER BY first, -rating_average, id OFFSET CAST(:size AS integer) - 1 LIMIT 1
    ), entries AS MATERIALIZED (
        SELECT e.place_id, e.unit, e.during FROM availability.calendar_entries e
         WHERE e.live AND e.during && tstzrange(:full_lo, :full_hi)
           AND (e.expires_at IS NULL OR e.expires_at > :now)
    ), later AS (
        -- Touched places whose first free slot is a later one of their group: read (from the
        -- entries' side) only when the page can reach a group's second slot, i.e. once the places
        -- free at the first slots are used up. Each with its entries of the span.
        SELECT {_COLUMNS}, g.n AS grp, g.starts, g.before, g.reach, e.during, e.units
          FROM availability.places p
          JOIN grp g ON g.key = p.schedule_group
          JOIN (SELECT place_id, array_agg(during) AS during, array_agg(unit) AS units FROM entries
                 GROUP BY place_id) e ON e.place_id = p.id
         WHERE (NOT EXISTS (SELECT FROM bound) OR (SELECT first FROM bound) >= (SELECT min(second) FROM grp))
           AND g.second IS NOT NULL
           AND p.id = ANY (ARRAY(SELECT place_id FROM touched)) AND {_FILTERS}
    ), later_hits AS (
        SELECT b.id, b.title, b.city, b.capacity, b.unit_count, b.price_amount, b.price_currency,
               b.rating_average, b.rating_count, b.time_zone, b.booking_mode, b.cover_photo_url,
               b.starts[f.numbers[1]] AS first, array_to_string(f.numbers, ',') AS free, b.grp
          FROM later b
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
         WHERE f.numbers[1] > 1
    )
    SELECT CAST(id AS text), title, city, capacity, price_amount, price_currency, rating_average, rating_count,
           time_zone, booking_mode, coalesce(cover_photo_url, ''), grp, free
      FROM (
        SELECT * FROM first_hits
        UNION ALL
        SELECT * FROM later_hits
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


class SqlAlchemySearch:
    def __init__(self, session: AsyncSession, driver):
        self.session, self.driver = session, driver

    async def groups(self, city: str) -> list[Group]:
        db = await self.driver()
        return [Group(str(key), tz, schedule) for key, tz, schedule in await db.fetch(GROUPS_SQL, city)]

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
    ) -> list:
        """The `size` first hits after `position` (first slot, rating, id) in the API's order, for
        the given (schedule group key, slot group) pairs: rows of the columns
        service_layer.queries.SUMMARY_FIELDS names, in that order, then group and free."""
        plans = []
        for n, (key, group) in enumerate(groups, start=1):
            first = group.candidates[0].start
            # The keyset of the group's places free at its first slot: after the position's
            # (rank, id) when the position is at that slot, from the top when later.
            same = position is not None and first == position[0]
            plans.append(
                {
                    "key": key,
                    "first": first.isoformat(),
                    "second": group.candidates[1].start.isoformat() if len(group.candidates) > 1 else None,
                    "open": position is None or first >= position[0],
                    "after_rank": -position[1] if same else BELOW_ANY_RANK,
                    "after_id": position[2] if same else NIL_UUID,
                    "before_s": (group.candidates[0].start - group.guarded[0].start).total_seconds(),
                    "reach_s": (group.guarded[0].end - group.candidates[0].start).total_seconds(),
                    "n": n,
                    "starts": [c.start.isoformat() for c in group.candidates],
                }
            )
        values = {
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
        }
        db = await self.driver()
        return await db.fetch(PAGE_SQL, *(values[name] for name in _PAGE_PARAMS))


NIL_UUID = "00000000-0000-0000-0000-000000000000"
BELOW_ANY_RANK = -1.0e300  # below every -rating_average: a group read from its top
