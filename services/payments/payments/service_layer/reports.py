"""Revenue reports, computed by aggregate SQL over the ledger (CAPTURE and REFUND entries)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from kit.errors import InvalidArgument
from kit.timezones import iana_zone
from payments.service_layer.handlers import Deps, require_uuid

MAX_RANGE = timedelta(days=366)


@dataclass(frozen=True)
class CurrencyRevenue:
    currency: str
    captured: int
    refunded: int
    payment_count: int

    @property
    def net(self) -> int:
        return self.captured - self.refunded


@dataclass(frozen=True)
class RevenueStats:
    totals: list[CurrencyRevenue]
    daily: list[tuple[date, CurrencyRevenue]]


async def get_revenue_stats(
    deps: Deps, start: datetime, end: datetime, time_zone: str, booking_ids: list[str]
) -> RevenueStats:
    """Captured, refunded and net per currency, in total and per local day."""
    if end <= start:
        raise InvalidArgument("time_range.end_time must be after start_time", reason="INVALID_TIME_RANGE")
    if end - start > MAX_RANGE:
        raise InvalidArgument("time_range may span at most 366 days", reason="INVALID_TIME_RANGE")
    time_zone = time_zone or "UTC"
    if iana_zone(time_zone) is None:
        raise InvalidArgument(f"time_zone {time_zone[:64]!r} is not an IANA time zone")
    if len(booking_ids) > 1000:
        raise InvalidArgument("at most 1000 booking_ids")
    ids = sorted({require_uuid(b, "booking_ids") for b in booking_ids}) or None
    async with deps.uow() as uow:
        rows = await uow.payments.revenue(start, end, time_zone, ids)
        counts = await uow.payments.revenue_payment_counts(start, end, ids)
    daily, totals = [], {}
    for day, currency, captured, refunded, count in rows:
        daily.append((day, CurrencyRevenue(currency, int(captured), int(refunded), int(count))))
        captured_sum, refunded_sum = totals.get(currency, (0, 0))
        totals[currency] = (captured_sum + int(captured), refunded_sum + int(refunded))
    return RevenueStats(
        totals=[CurrencyRevenue(c, cap, ref, counts.get(c, 0)) for c, (cap, ref) in sorted(totals.items())],
        daily=daily,
    )
