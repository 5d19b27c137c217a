"""The search as ONE set-based query: matching places and, through the partial GiST index on live
`during`, the occupied ranges of the window of those places only, grouped per place. No query per
place; for a first page, only the best ranked of the places with no busy range at all."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

SEARCH_SQL = text(
    """
    WITH candidates AS (
        -- Narrow rows: the wide columns are read for the returned places only (last step).
        SELECT id, rating_average, time_zone, jsonb_hash_extended(schedule, 0) AS schedule_key,
               greatest((schedule->>'buffer_before')::int, (schedule->>'buffer_after')::int) AS buffer_s
          FROM availability.places
         WHERE lower(city) = lower(:city) AND active
           AND capacity >= :min_capacity
           AND unit_count >= :units
           AND rating_average >= :min_rating
           AND (CAST(:min_price AS bigint) IS NULL OR (price_currency = :currency AND price_amount >= :min_price))
           AND (CAST(:max_price AS bigint) IS NULL OR (price_currency = :currency AND price_amount <= :max_price))
    ), pad AS (
        -- Read busy ranges around the window only as far as the widest buffer of the candidates.
        SELECT make_interval(secs => coalesce(max(buffer_s), 0)) AS width FROM candidates
    ), busy AS (
        -- One scan of the partial GiST index (live ranges of the window, place ids from the index),
        -- kept for the candidate places only. JSON, not arrays: asyncpg would introspect array
        -- types inside the transaction (16 catalog locks).
        SELECT e.place_id,
               json_agg(json_build_array(e.unit, extract(epoch FROM lower(e.during)),
                                         extract(epoch FROM upper(e.during)))) AS busy
          FROM pad, availability.calendar_entries e
         WHERE e.live
           AND e.during && tstzrange(CAST(:busy_start AS timestamptz) - pad.width,
                                     CAST(:busy_end AS timestamptz) + pad.width, '[)')
           AND (e.expires_at IS NULL OR e.expires_at > :now)
           AND e.place_id IN (SELECT id FROM candidates)
         GROUP BY e.place_id
    ), ranked AS (
        -- Places without any busy range share their schedule's slots, so among those of one
        -- schedule the best ranked come first: a first page needs only `free_limit` of them.
        -- (schedule_key: a 64-bit hash of the schedule; the service groups by the schedule itself.)
        SELECT c.id, b.busy,
               row_number() OVER (PARTITION BY c.schedule_key, c.time_zone, b.busy IS NULL
                                  ORDER BY c.rating_average DESC, c.id) AS free_rank
          FROM candidates c LEFT JOIN busy b ON b.place_id = c.id
    )
    SELECT p.id, p.title, p.city, p.capacity, p.unit_count, p.price_amount, p.price_currency,
           p.rating_average, p.rating_count, p.time_zone, p.booking_mode,
           p.photo_urls->>0 AS cover_photo_url, p.schedule::text AS schedule_text, r.busy
      FROM ranked r JOIN availability.places p ON p.id = r.id
     WHERE r.busy IS NOT NULL OR CAST(:free_limit AS integer) IS NULL OR r.free_rank <= :free_limit
    """
)


@dataclass
class SearchRow:
    id: str
    title: str
    city: str
    capacity: int
    unit_count: int
    price_amount: int
    price_currency: str
    rating_average: float
    rating_count: int
    time_zone: str
    booking_mode: str
    cover_photo_url: str
    schedule_text: str  # raw JSON: places sharing a schedule share its parsing and candidate slots
    busy: list[tuple[int, datetime, datetime]]


class SqlAlchemySearch:
    def __init__(self, session: AsyncSession):
        self.session = session

    async def candidates(
        self,
        city: str,
        min_capacity: int,
        min_rating: float,
        currency: str | None,
        min_price: int | None,
        max_price: int | None,
        busy_start: datetime,
        busy_end: datetime,
        now: datetime,
        units: int = 1,
        free_limit: int | None = None,
    ) -> list[SearchRow]:
        """Candidate places with their busy ranges around the window. Places with no busy range
        (their slots are their schedule's) are limited to the `free_limit` best ranked
        (rating_average desc, id) per schedule and zone; every place with a busy range is returned."""
        rows = await self.session.execute(
            SEARCH_SQL,
            {
                "city": city,
                "min_capacity": min_capacity,
                "min_rating": min_rating,
                "currency": currency,
                "min_price": min_price,
                "max_price": max_price,
                "busy_start": busy_start,
                "busy_end": busy_end,
                "now": now,
                "units": units,
                "free_limit": free_limit,
            },
        )
        return [
            SearchRow(
                id=str(r.id),
                title=r.title,
                city=r.city,
                capacity=r.capacity,
                unit_count=r.unit_count,
                price_amount=r.price_amount,
                price_currency=r.price_currency,
                rating_average=r.rating_average,
                rating_count=r.rating_count,
                time_zone=r.time_zone,
                booking_mode=r.booking_mode,
                cover_photo_url=r.cover_photo_url or "",
                schedule_text=r.schedule_text,
                busy=_busy(r.busy),
            )
            for r in rows
        ]


def _busy(raw) -> list[tuple[int, datetime, datetime]]:
    if not raw:
        return []
    items = json.loads(raw) if isinstance(raw, str) else raw
    return [(int(u), datetime.fromtimestamp(float(s), UTC), datetime.fromtimestamp(float(e), UTC)) for u, s, e in items]
