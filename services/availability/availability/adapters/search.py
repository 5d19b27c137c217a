"""The search as ONE set-based query: matching places and, through the partial GiST index on live
`during`, every occupied range of the window, grouped per place. No query per place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from availability.domain.model import Schedule

SEARCH_SQL = text(
    """
    WITH candidates AS (
        SELECT id, title, city, capacity, unit_count, price_amount, price_currency, rating_average,
               rating_count, time_zone, booking_mode, photo_urls, schedule
          FROM availability.places
         WHERE lower(city) = lower(:city) AND active
           AND capacity >= :min_capacity
           AND rating_average >= :min_rating
           AND (CAST(:min_price AS bigint) IS NULL OR (price_currency = :currency AND price_amount >= :min_price))
           AND (CAST(:max_price AS bigint) IS NULL OR (price_currency = :currency AND price_amount <= :max_price))
    ), busy AS (
        SELECT e.place_id, array_agg(e.unit) AS units, array_agg(lower(e.during)) AS starts,
               array_agg(upper(e.during)) AS ends
          FROM availability.calendar_entries e
         WHERE e.live AND e.during && tstzrange(:busy_start, :busy_end, '[)')
           AND (e.expires_at IS NULL OR e.expires_at > :now)
         GROUP BY e.place_id
    )
    SELECT c.*, b.units, b.starts, b.ends
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
    schedule: Schedule
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
                schedule=Schedule.from_dict(r.schedule),
                busy=list(zip(r.units, r.starts, r.ends, strict=True)) if r.units else [],
            )
            for r in rows
        ]
