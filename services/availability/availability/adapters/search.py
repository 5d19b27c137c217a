"""The search as ONE set-based query: matching places and, through the partial GiST index on live
`during`, every occupied range of the window, grouped per place. No query per place."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

SEARCH_SQL = text(
    """
    WITH candidates AS (
        SELECT id, title, city, capacity, unit_count, price_amount, price_currency, rating_average,
               rating_count, time_zone, booking_mode, photo_urls, schedule::text AS schedule_text
          FROM availability.places
         WHERE lower(city) = lower(:city) AND active
           AND capacity >= :min_capacity
           AND rating_average >= :min_rating
           AND (CAST(:min_price AS bigint) IS NULL OR (price_currency = :currency AND price_amount >= :min_price))
           AND (CAST(:max_price AS bigint) IS NULL OR (price_currency = :currency AND price_amount <= :max_price))
    ), pad AS (
        -- Read busy ranges around the window only as far as the widest buffer of the candidates.
        SELECT make_interval(secs => coalesce(max(greatest((schedule_text::jsonb->>'buffer_before')::int,
                                                           (schedule_text::jsonb->>'buffer_after')::int)), 0)) AS width
          FROM candidates
    ), busy AS (
        -- JSON, not arrays: asyncpg would introspect array types inside the transaction (16 catalog locks).
        SELECT e.place_id,
               json_agg(json_build_array(e.unit, extract(epoch FROM lower(e.during)),
                                         extract(epoch FROM upper(e.during)))) AS busy
          FROM availability.calendar_entries e
          JOIN pad ON true
         WHERE e.live
           AND e.during && tstzrange(CAST(:busy_start AS timestamptz) - pad.width,
                                     CAST(:busy_end AS timestamptz) + pad.width, '[)')
           AND (e.expires_at IS NULL OR e.expires_at > :now)
         GROUP BY e.place_id
    )
    SELECT c.*, b.busy
      FROM candidates c LEFT JOIN busy b ON b.place_id = c.id
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
    ) -> list[SearchRow]:
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
                cover_photo_url=r.photo_urls[0] if r.photo_urls else "",
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
