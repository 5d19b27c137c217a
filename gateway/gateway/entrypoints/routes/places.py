"""Places (CRUD with etags), free slots, the iCalendar export, blocks, and search."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from google.protobuf import duration_pb2, field_mask_pb2
from pydantic import AwareDatetime

from gateway.entrypoints.cursors import decode_cursor, encode_cursor
from gateway.entrypoints.proto_json import from_json, to_json
from gateway.entrypoints.responses import (
    BlockOut,
    CalendarFeedLinkOut,
    CalendarPageOut,
    FreeSlotPageOut,
    PlaceOut,
    PlacePageOut,
    SearchPageOut,
)
from gateway.entrypoints.schemas import BlockIn, PlaceIn, PlacePatch, Uuid
from gateway.entrypoints.security import (
    Principal,
    authenticated,
    bearer,
    gateway_of,
    host_or_agent,
    request_id,
)
from gateway.service_layer import handlers
from kit.context import current_caller
from kit.errors import InvalidArgument, NotFound
from kit.identity import Caller
from reserva.availability.v1 import availability_pb2 as av
from reserva.type.v1 import types_pb2

router = APIRouter(tags=["places"])
IfMatch = Header(default=None, alias="If-Match", max_length=200, description="The place's etag")


def _etag(value: str | None) -> str:
    """The services' etags are HTTP entity tags already ("3", W/"3"): If-Match passes through."""
    return (value or "").strip()


def _place_response(place: av.Place, response: Response) -> dict[str, Any]:
    if place.etag:
        response.headers["ETag"] = place.etag if place.etag.endswith('"') else f'"{place.etag}"'
    return to_json(place)


def _money(amount: int | None, currency: str | None) -> types_pb2.Money | None:
    if amount is None:
        return None
    if not currency:
        raise InvalidArgument("a price filter needs `currency`", reason="INVALID_CURRENCY")
    return types_pb2.Money(amount_minor=amount, currency_code=currency)


def _date(value: date) -> types_pb2.Date:
    return types_pb2.Date(year=value.year, month=value.month, day=value.day)


def _range(start: datetime, end: datetime) -> types_pb2.TimeRange:
    time_range = types_pb2.TimeRange()
    try:
        time_range.start_time.FromDatetime(start)
        time_range.end_time.FromDatetime(end)
    except (ValueError, OverflowError):
        raise InvalidArgument("time out of the supported range", reason="INVALID_TIME_RANGE") from None
    return time_range


@router.post(
    "/v1/places",
    response_model=PlaceOut,
    response_model_exclude_unset=True,
    status_code=201,
    summary="Hosts: create a place",
)
async def create_place(
    body: PlaceIn,
    request: Request,
    response: Response,
    _: Principal = Depends(host_or_agent),
    key: str = Depends(request_id),
) -> dict[str, Any]:
    place = from_json(body.model_dump(mode="json", exclude_none=True), av.Place())
    created = await gateway_of(request).peers.availability.call(
        "CreatePlace", av.CreatePlaceRequest(request_id=key, place=place)
    )
    return _place_response(created, response)


@router.get(
    "/v1/places", response_model=PlacePageOut, response_model_exclude_unset=True, summary="List places with filters"
)
async def list_places(
    request: Request,
    city: str = Query(default="", max_length=100),
    owner_id: Uuid | None = None,
    min_capacity: int = Query(default=0, ge=0, le=10000),
    min_price_minor: int | None = Query(default=None, ge=0, le=10**13),
    max_price_minor: int | None = Query(default=None, ge=0, le=10**13),
    currency: str | None = Query(default=None, pattern=r"^[A-Z]{3}$"),
    min_rating: float = Query(default=0.0, ge=0.0, le=5.0),
    active: bool | None = None,
    order_by: str = Query(default="", max_length=200),
    page_size: int = Query(default=50, ge=1, le=200),
    page_token: str | None = Query(default=None, max_length=4096),
    _: Principal = Depends(authenticated),
) -> dict[str, Any]:
    query = av.ListPlacesRequest(
        city=city,
        owner_id=owner_id or "",
        min_capacity=min_capacity,
        min_price=_money(min_price_minor, currency),
        max_price=_money(max_price_minor, currency),
        min_rating=min_rating,
        order_by=order_by,
        page_size=page_size,
        page_token=decode_cursor("places", page_token),
    )
    if active is not None:
        query.active = active
    reply = await gateway_of(request).peers.availability.call("ListPlaces", query)
    return {
        "places": [to_json(p) for p in reply.places],
        "next_page_token": encode_cursor("places", reply.next_page_token),
    }


@router.get(
    "/v1/places/{place_id}",
    response_model=PlaceOut,
    response_model_exclude_unset=True,
    summary="One place (ETag header for If-Match)",
)
async def get_place(
    place_id: Uuid, request: Request, response: Response, _: Principal = Depends(authenticated)
) -> dict[str, Any]:
    place = await gateway_of(request).peers.availability.call("GetPlace", av.GetPlaceRequest(id=place_id))
    return _place_response(place, response)


@router.patch(
    "/v1/places/{place_id}",
    response_model=PlaceOut,
    response_model_exclude_unset=True,
    summary="Owner: change fields of a place (If-Match for concurrency)",
)
async def update_place(
    place_id: Uuid,
    body: PlacePatch,
    request: Request,
    response: Response,
    if_match: str | None = IfMatch,
    _: Principal = Depends(host_or_agent),
    key: str = Depends(request_id),
) -> dict[str, Any]:
    values = body.model_dump(mode="json", exclude_none=True)
    if not values:
        raise InvalidArgument("nothing to update: send at least one field", reason="INVALID_UPDATE_MASK")
    place = from_json(values, av.Place())
    place.id, place.etag = place_id, _etag(if_match)
    update = av.UpdatePlaceRequest(
        request_id=key, place=place, update_mask=field_mask_pb2.FieldMask(paths=sorted(values))
    )
    updated = await gateway_of(request).peers.availability.call("UpdatePlace", update)
    return _place_response(updated, response)


@router.delete(
    "/v1/places/{place_id}",
    response_model=PlaceOut,
    response_model_exclude_unset=True,
    summary="Owner: deactivate a place",
)
async def delete_place(
    place_id: Uuid,
    request: Request,
    response: Response,
    if_match: str | None = IfMatch,
    _: Principal = Depends(host_or_agent),
    key: str = Depends(request_id),
) -> dict[str, Any]:
    deleted = await gateway_of(request).peers.availability.call(
        "DeletePlace", av.DeletePlaceRequest(request_id=key, id=place_id, etag=_etag(if_match))
    )
    return _place_response(deleted, response)


@router.get(
    "/v1/places/{place_id}/free-slots",
    response_model=FreeSlotPageOut,
    response_model_exclude_unset=True,
    summary="Free slots of a place between two local dates",
)
async def free_slots(
    place_id: Uuid,
    request: Request,
    start_date: date,
    end_date: date,
    duration_minutes: int = Query(ge=5, le=31 * 24 * 60),
    units: int = Query(default=1, ge=1, le=1000),
    page_size: int = Query(default=50, ge=1, le=200),
    page_token: str | None = Query(default=None, max_length=4096),
    _: Principal = Depends(authenticated),
) -> dict[str, Any]:
    query = av.ListFreeSlotsRequest(
        place_id=place_id,
        start_date=_date(start_date),
        end_date=_date(end_date),
        duration=duration_pb2.Duration(seconds=duration_minutes * 60),
        units=units,
        page_size=page_size,
        page_token=decode_cursor("free-slots", page_token),
    )
    reply = await gateway_of(request).peers.availability.call("ListFreeSlots", query)
    return {
        "slots": [to_json(s) for s in reply.slots],
        "next_page_token": encode_cursor("free-slots", reply.next_page_token),
    }


@router.get(
    "/v1/places/{place_id}/calendar.ics",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {"schema": {"type": "string"}}}}},
    summary="Owner: the place's calendar as iCalendar",
)
async def calendar_ics(
    place_id: Uuid,
    request: Request,
    start_time: AwareDatetime | None = None,
    end_time: AwareDatetime | None = None,
    token: str | None = Query(
        default=None,
        min_length=20,
        max_length=100,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="The secret of the place's calendar feed link (POST /v1/places/{place_id}/calendar-feed), "
        "for calendar apps, which cannot send a bearer token; without it, a bearer token is required.",
    ),
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
) -> Response:
    if token is not None:
        # The link reads on behalf of the user who made it; the service checks that user may still.
        reader = await handlers.calendar_feed_reader(gateway_of(request).identity, place_id, token)
        current_caller.set(Caller(user_id=reader.id, roles=reader.roles))
    else:
        await host_or_agent(await authenticated(request, credentials))
    query = av.ExportCalendarRequest(place_id=place_id)
    if start_time and end_time:
        query.time_range.CopyFrom(_range(start_time, end_time))
    elif start_time or end_time:
        raise InvalidArgument("give both start_time and end_time, or neither", reason="INVALID_TIME_RANGE")
    reply = await gateway_of(request).peers.availability.call("ExportCalendar", query)
    return Response(reply.ics_content, media_type="text/calendar; charset=utf-8")


async def _may_read_calendar(request: Request, place_id: str) -> None:
    """Raises unless the caller may read the place's calendar: the availability service decides
    (its owner or an agent), on the smallest read of it."""
    now = datetime.now(UTC)
    minute = _range(now, now + timedelta(minutes=1))
    probe = av.ListCalendarEntriesRequest(place_id=place_id, time_range=minute, page_size=1)
    await gateway_of(request).peers.availability.call("ListCalendarEntries", probe)


@router.post(
    "/v1/places/{place_id}/calendar-feed",
    status_code=201,
    response_model=CalendarFeedLinkOut,
    summary="Owner: a new link to the place's iCalendar feed for calendar apps (the link before stops working)",
)
async def make_calendar_feed_link(
    place_id: Uuid, request: Request, principal: Principal = Depends(host_or_agent), _: str = Depends(request_id)
) -> CalendarFeedLinkOut:
    await _may_read_calendar(request, place_id)
    gateway = gateway_of(request)
    secret = await handlers.make_calendar_feed_link(gateway.identity, place_id, principal.user_id)
    base = gateway.settings.public_base_url or str(request.base_url)
    path = request.app.url_path_for("calendar_ics", place_id=place_id)
    return CalendarFeedLinkOut(url=f"{base.rstrip('/')}{path}?token={secret}")


@router.delete(
    "/v1/places/{place_id}/calendar-feed",
    status_code=204,
    response_class=Response,
    summary="Owner: remove the link to the place's iCalendar feed (it stops working at once)",
)
async def remove_calendar_feed_link(place_id: Uuid, request: Request, _: Principal = Depends(host_or_agent)):
    await _may_read_calendar(request, place_id)
    if not await handlers.remove_calendar_feed_link(gateway_of(request).identity, place_id):
        raise NotFound("this place has no calendar feed link", reason="CALENDAR_FEED_LINK_NOT_FOUND")
    return Response(status_code=204)


@router.get(
    "/v1/places/{place_id}/calendar",
    response_model=CalendarPageOut,
    response_model_exclude_unset=True,
    summary="Owner: holds and blocks overlapping a time range",
)
async def calendar_entries(
    place_id: Uuid,
    request: Request,
    start_time: AwareDatetime,
    end_time: AwareDatetime,
    page_size: int = Query(default=50, ge=1, le=200),
    page_token: str | None = Query(default=None, max_length=4096),
    _: Principal = Depends(host_or_agent),
) -> dict[str, Any]:
    query = av.ListCalendarEntriesRequest(
        place_id=place_id,
        time_range=_range(start_time, end_time),
        page_size=page_size,
        page_token=decode_cursor("calendar", page_token),
    )
    reply = await gateway_of(request).peers.availability.call("ListCalendarEntries", query)
    return {
        "entries": [to_json(e) for e in reply.entries],
        "next_page_token": encode_cursor("calendar", reply.next_page_token),
    }


@router.post(
    "/v1/places/{place_id}/blocks",
    response_model=BlockOut,
    response_model_exclude_unset=True,
    status_code=201,
    summary="Owner: block time ranges",
)
async def block_time(
    place_id: Uuid,
    body: BlockIn,
    request: Request,
    _: Principal = Depends(host_or_agent),
    key: str = Depends(request_id),
) -> dict[str, Any]:
    block = av.BlockTimeRequest(request_id=key, place_id=place_id, reason=body.reason)
    for r in body.ranges:
        block.ranges.append(_range(r.start_time, r.end_time))
    return to_json(await gateway_of(request).peers.availability.call("BlockTime", block))


@router.post(
    "/v1/blocks/{block_id}:remove",
    response_model=BlockOut,
    response_model_exclude_unset=True,
    summary="Owner: remove a block",
)
async def unblock_time(
    block_id: Uuid, request: Request, _: Principal = Depends(host_or_agent), key: str = Depends(request_id)
) -> dict[str, Any]:
    unblock = av.UnblockTimeRequest(request_id=key, block_id=block_id)
    return to_json(await gateway_of(request).peers.availability.call("UnblockTime", unblock))


@router.get(
    "/v1/search",
    response_model=SearchPageOut,
    response_model_exclude_unset=True,
    tags=["search"],
    summary="Places with free slots of a given length in a window",
)
async def search(
    request: Request,
    city: str = Query(min_length=1, max_length=100),
    start_time: AwareDatetime = Query(),
    end_time: AwareDatetime = Query(),
    duration_minutes: int = Query(ge=5, le=31 * 24 * 60),
    units: int = Query(default=1, ge=1, le=1000),
    min_capacity: int = Query(default=0, ge=0, le=10000),
    min_price_minor: int | None = Query(default=None, ge=0, le=10**13),
    max_price_minor: int | None = Query(default=None, ge=0, le=10**13),
    currency: str | None = Query(default=None, pattern=r"^[A-Z]{3}$"),
    min_rating: float = Query(default=0.0, ge=0.0, le=5.0),
    max_slots_per_place: int = Query(default=3, ge=1, le=20),
    page_size: int = Query(default=50, ge=1, le=200),
    page_token: str | None = Query(default=None, max_length=4096),
    _: Principal = Depends(authenticated),
) -> dict[str, Any]:
    query = av.SearchAvailabilityRequest(
        city=city,
        window=_range(start_time, end_time),
        duration=duration_pb2.Duration(seconds=duration_minutes * 60),
        units=units,
        min_capacity=min_capacity,
        min_price=_money(min_price_minor, currency),
        max_price=_money(max_price_minor, currency),
        min_rating=min_rating,
        max_slots_per_place=max_slots_per_place,
        page_size=page_size,
        page_token=decode_cursor("search", page_token),
    )
    reply = await gateway_of(request).peers.availability.call("SearchAvailability", query)
    return {
        "results": [to_json(r) for r in reply.results],
        "next_page_token": encode_cursor("search", reply.next_page_token),
    }
