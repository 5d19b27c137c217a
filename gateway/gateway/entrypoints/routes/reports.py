"""Reports for agents (hosts see their own booking figures): bookings per day and status,
cancellation rate, revenue per currency. The figures are aggregates computed inside the services;
the dashboard is cached briefly; the CSV export is streamed row by row."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from gateway.entrypoints.proto_json import to_json
from gateway.entrypoints.responses import BookingStatsOut, DashboardOut, RevenueStatsOut
from gateway.entrypoints.routes.places import _range
from gateway.entrypoints.schemas import Uuid
from gateway.entrypoints.security import Principal, agent_only, gateway_of, host_or_agent
from gateway.entrypoints.timestamps import report_window
from reserva.booking.v1 import booking_pb2 as bk
from reserva.payments.v1 import payments_pb2 as pay

router = APIRouter(prefix="/v1/reports", tags=["reports"])
TimeZone = Query(default="UTC", min_length=1, max_length=64)


async def _booking_stats(request, start, end, time_zone, host_id="", place_id="") -> bk.BookingStats:
    query = bk.GetBookingStatsRequest(
        time_range=_range(start, end), time_zone=time_zone, host_id=host_id or "", place_id=place_id or ""
    )
    return await gateway_of(request).peers.booking.call("GetBookingStats", query)


async def _revenue_stats(request, start, end, time_zone) -> pay.RevenueStats:
    query = pay.GetRevenueStatsRequest(time_range=_range(start, end), time_zone=time_zone)
    return await gateway_of(request).peers.payments.call("GetRevenueStats", query)


@router.get(
    "/bookings",
    response_model=BookingStatsOut,
    response_model_exclude_unset=True,
    summary="Bookings per day and status, cancellation rate, booking revenue",
)
async def booking_report(
    request: Request,
    start_time: AwareDatetime | None = None,
    end_time: AwareDatetime | None = None,
    time_zone: str = TimeZone,
    host_id: Uuid | None = None,
    place_id: Uuid | None = None,
    _: Principal = Depends(host_or_agent),
) -> dict[str, Any]:
    start, end = report_window(start_time, end_time)
    return to_json(await _booking_stats(request, start, end, time_zone, host_id, place_id))


@router.get(
    "/revenue",
    response_model=RevenueStatsOut,
    response_model_exclude_unset=True,
    summary="Agents: revenue per currency and day (payments ledger)",
)
async def revenue_report(
    request: Request,
    start_time: AwareDatetime | None = None,
    end_time: AwareDatetime | None = None,
    time_zone: str = TimeZone,
    _: Principal = Depends(agent_only),
) -> dict[str, Any]:
    start, end = report_window(start_time, end_time)
    return to_json(await _revenue_stats(request, start, end, time_zone))


@router.get(
    "/dashboard",
    response_model=DashboardOut,
    response_model_exclude_unset=True,
    summary="Agents: the dashboard figures in one answer (cached briefly)",
)
async def dashboard(
    request: Request,
    start_time: AwareDatetime | None = None,
    end_time: AwareDatetime | None = None,
    time_zone: str = TimeZone,
    _: Principal = Depends(agent_only),
) -> dict[str, Any]:
    gateway = gateway_of(request)
    start, end = report_window(start_time, end_time)
    key = f"dashboard:{start.isoformat()}:{end.isoformat()}:{time_zone}"
    cached = await gateway.report_cache.get(key)
    if cached is not None:
        return json.loads(cached)
    bookings, revenue = await asyncio.gather(
        _booking_stats(request, start, end, time_zone), _revenue_stats(request, start, end, time_zone)
    )
    figures = {
        "start_time": start.isoformat(),
        "end_time": end.isoformat(),
        "time_zone": time_zone,
        "bookings_per_day": to_json(bookings)["daily_counts"],
        "total_bookings": bookings.total_bookings,
        "cancelled_bookings": bookings.cancelled_bookings,
        "cancellation_rate": bookings.cancellation_rate,
        "revenue": to_json(revenue)["totals"],
    }
    await gateway.report_cache.set(key, json.dumps(figures).encode(), gateway.settings.report_cache_ttl_s)
    return figures


async def _csv_rows(stats: bk.BookingStats) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(*values: object) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(values)
        return buffer.getvalue()

    yield line("date", "status", "count")
    for row in stats.daily_counts:
        day = f"{row.date.year:04d}-{row.date.month:02d}-{row.date.day:02d}"
        yield line(day, bk.Booking.Status.Name(row.status), row.count)


@router.get(
    "/bookings.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    summary="Agents: bookings per day and status as CSV (streamed)",
)
async def booking_report_csv(
    request: Request,
    start_time: AwareDatetime | None = None,
    end_time: AwareDatetime | None = None,
    time_zone: str = TimeZone,
    _: Principal = Depends(agent_only),
) -> StreamingResponse:
    start, end = report_window(start_time, end_time)
    stats = await _booking_stats(request, start, end, time_zone)
    return StreamingResponse(
        _csv_rows(stats),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="bookings.csv"'},
    )
