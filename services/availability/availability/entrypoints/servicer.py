"""The gRPC servicer: proto in, handler call, proto out. No business decisions here."""

from __future__ import annotations

import hashlib

from availability.adapters import ical
from availability.adapters import proto_mapping as pm
from availability.domain.errors import SlotUnavailable, invalid
from availability.domain.model import Place, Schedule
from availability.service_layer import handlers, queries
from kit.context import current_caller
from kit.errors import ReservaError
from reserva.availability.v1 import availability_pb2 as pb
from reserva.availability.v1 import availability_pb2_grpc
from reserva.type.v1 import types_pb2


def fingerprint(request, caller_id: str = "") -> str:
    """What makes two requests "the same" for idempotency: every field, deterministically."""
    body = request.SerializeToString(deterministic=True)
    return hashlib.sha256(body + b"|" + caller_id.encode()).hexdigest()


def request_id_of(request) -> str:
    value = request.request_id
    if not value or len(value) > 64:
        raise invalid("request_id is required (at most 64 characters)", "INVALID_REQUEST_ID", "request_id")
    return value


def slot_conflict_details(error: ReservaError) -> list:
    """Encodes SlotUnavailable's conflicting ranges as a SlotConflict status detail."""
    if not isinstance(error, SlotUnavailable) and error.reason != "SLOT_UNAVAILABLE":
        return []
    ranges = error.details.get("conflicting_ranges", [])
    return [pb.SlotConflict(conflicting_ranges=[pm.range_to_proto(r) for r in ranges])]


def _patch(message: pb.Place, paths: list[str]) -> Place:
    """The values of an UpdatePlace message, read leniently: only masked fields are used."""
    schedule = pm.schedule_from(message.schedule) if message.HasField("schedule") else Schedule()
    if message.HasField("schedule"):
        # An explicitly sent zero means "default" for these durations, as on create.
        schedule = Schedule.with_defaults(**schedule.__dict__)
    return Place(
        id=message.id,
        owner_id="",
        title=message.title,
        description=message.description,
        city=message.city,
        address=message.address,
        capacity=message.capacity,
        unit_count=message.unit_count or 1,
        price_per_hour=pm.money_from(message.price_per_hour),
        time_zone=message.time_zone,
        booking_mode=pm.booking_mode_from(message.booking_mode),
        photo_urls=list(message.photo_urls),
        active=message.active,
        deposit_policy=pm.deposit_from(message.deposit_policy),
        cancellation_policy=pm.cancellation_from(message.cancellation_policy)
        if message.HasField("cancellation_policy")
        else handlers.Place.__dataclass_fields__["cancellation_policy"].default_factory(),
        schedule=schedule,
    )


def _place_filter(request) -> queries.PlaceFilter:
    return queries.PlaceFilter(
        city=request.city,
        owner_id=getattr(request, "owner_id", ""),
        min_capacity=request.min_capacity,
        min_price=pm.money_from(request.min_price) if request.HasField("min_price") else None,
        max_price=pm.money_from(request.max_price) if request.HasField("max_price") else None,
        min_rating=request.min_rating,
        active=request.active if hasattr(request, "active") and request.HasField("active") else None,
    )


def _uuid(value: str, field: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(value))
    except ValueError as error:
        raise invalid(f"{field} must be a UUID", field=field) from error


class AvailabilityServicer(availability_pb2_grpc.AvailabilityServiceServicer):
    def __init__(self, deps: handlers.Deps):
        self.deps = deps

    async def CreatePlace(self, request, context):
        caller = current_caller.get()
        place = pm.place_from(request.place)
        created = await handlers.create_place(
            self.deps, request_id_of(request), fingerprint(request, caller.user_id), place, caller
        )
        return pm.place_to(created)

    async def GetPlace(self, request, context):
        return pm.place_to(await handlers.get_place(self.deps, _uuid(request.id, "id")))

    async def GetPlaces(self, request, context):
        if not 1 <= len(request.ids) <= 100:
            raise invalid("ids: 1-100 place ids", field="ids")
        valid, malformed = [], []
        for value in request.ids:
            try:
                valid.append(_uuid(value, "ids"))
            except ReservaError:
                malformed.append(value)
        found, missing = await handlers.get_places(self.deps, valid)
        by_id = {p.id: p for p in found}
        ordered = list(dict.fromkeys(request.ids))
        return pb.GetPlacesResponse(
            places=[pm.place_to(by_id[i]) for i in ordered if i in by_id],
            missing_ids=[i for i in ordered if i not in by_id],
        )

    async def ListPlaces(self, request, context):
        places, token = await queries.list_places(
            self.deps,
            _place_filter(request),
            request.order_by,
            request.page_size,
            request.page_token,
            current_caller.get(),
        )
        return pb.ListPlacesResponse(places=[pm.place_to(p) for p in places], next_page_token=token)

    async def UpdatePlace(self, request, context):
        caller = current_caller.get()
        paths = list(request.update_mask.paths)
        patch = _patch(request.place, paths)
        patch.id = _uuid(request.place.id, "place.id")
        updated = await handlers.update_place(
            self.deps,
            request_id_of(request),
            fingerprint(request, caller.user_id),
            patch,
            paths,
            request.place.etag,
            caller,
        )
        return pm.place_to(updated)

    async def DeletePlace(self, request, context):
        caller = current_caller.get()
        deleted = await handlers.delete_place(
            self.deps,
            request_id_of(request),
            fingerprint(request, caller.user_id),
            _uuid(request.id, "id"),
            request.etag,
            caller,
        )
        return pm.place_to(deleted)

    async def HoldSlots(self, request, context):
        hold = await handlers.hold_slots(
            self.deps,
            request_id_of(request),
            fingerprint(request),
            _uuid(request.place_id, "place_id"),
            [pm.range_from_proto(r, "ranges") for r in request.ranges],
            request.units or 1,
            pm.duration_from(request.ttl) if request.HasField("ttl") else handlers.timedelta(minutes=15),
            request.booking_id,
            request.holder_id,
        )
        return pm.hold_to(hold, self.deps.clock())

    async def ConfirmHold(self, request, context):
        hold = await handlers.confirm_hold(
            self.deps, request_id_of(request), fingerprint(request), _uuid(request.hold_id, "hold_id")
        )
        return pm.hold_to(hold, self.deps.clock())

    async def ReleaseHold(self, request, context):
        hold = await handlers.release_hold(
            self.deps, request_id_of(request), fingerprint(request), _uuid(request.hold_id, "hold_id"), request.reason
        )
        return pm.hold_to(hold, self.deps.clock())

    async def GetHold(self, request, context):
        return pm.hold_to(await handlers.get_hold(self.deps, _uuid(request.id, "id")), self.deps.clock())

    async def BlockTime(self, request, context):
        caller = current_caller.get()
        block = await handlers.block_time(
            self.deps,
            request_id_of(request),
            fingerprint(request, caller.user_id),
            _uuid(request.place_id, "place_id"),
            [pm.range_from_proto(r, "ranges") for r in request.ranges],
            request.reason,
            caller,
        )
        return pm.block_to(block)

    async def UnblockTime(self, request, context):
        caller = current_caller.get()
        block = await handlers.unblock_time(
            self.deps,
            request_id_of(request),
            fingerprint(request, caller.user_id),
            _uuid(request.block_id, "block_id"),
            caller,
        )
        return pm.block_to(block)

    async def ListCalendarEntries(self, request, context):
        entries, token = await queries.list_calendar_entries(
            self.deps,
            _uuid(request.place_id, "place_id"),
            pm.range_from_proto(request.time_range, "time_range"),
            request.page_size,
            request.page_token,
            current_caller.get(),
        )
        return pb.ListCalendarEntriesResponse(entries=[_entry_to(e) for e in entries], next_page_token=token)

    async def ExportCalendar(self, request, context):
        window = pm.range_from_proto(request.time_range, "time_range") if request.HasField("time_range") else None
        place, entries = await queries.export_calendar(
            self.deps, _uuid(request.place_id, "place_id"), window, current_caller.get()
        )
        return pb.ExportCalendarResponse(
            ics_content=ical.render(place, entries), content_type="text/calendar; charset=utf-8"
        )

    async def SearchAvailability(self, request, context):
        if not request.HasField("window"):
            raise invalid("window is required", "INVALID_TIME_RANGE", "window")
        query = queries.SearchQuery(
            filters=_place_filter(request),
            window=pm.range_from_proto(request.window, "window"),
            duration=pm.duration_from(request.duration),
            units=request.units or 1,
            max_slots=request.max_slots_per_place,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        hits, token = await queries.search_availability(self.deps, query)
        reply = pb.SearchAvailabilityResponse(next_page_token=token)
        ranges: dict = {}  # hits share slot tuples (a group's first slots): messages built once per tuple
        for hit in hits:
            _hit_into(reply.results.add(), hit, ranges)
        return reply

    async def ListFreeSlots(self, request, context):
        if not (request.HasField("start_date") and request.HasField("end_date")):
            raise invalid("start_date and end_date are required", "INVALID_TIME_RANGE", "start_date")
        slots, place, token = await queries.list_free_slots(
            self.deps,
            _uuid(request.place_id, "place_id"),
            pm.date_from(request.start_date, "start_date"),
            pm.date_from(request.end_date, "end_date"),
            pm.duration_from(request.duration),
            request.units,
            request.page_size,
            request.page_token,
        )
        tz = place.zone
        return pb.ListFreeSlotsResponse(
            slots=[
                pb.FreeSlot(range=pm.range_to_proto(s), local_start=s.start.astimezone(tz).isoformat()) for s in slots
            ],
            next_page_token=token,
        )

    async def ApplyRating(self, request, context):
        place = await handlers.apply_rating(
            self.deps,
            request_id_of(request),
            fingerprint(request),
            _uuid(request.place_id, "place_id"),
            request.rating,
            request.removed,
        )
        return pm.place_to(place)


_ENTRY_KIND = {"hold": (pb.CalendarEntry.HOLD, pb.Hold.HELD), "confirmed": (pb.CalendarEntry.HOLD, pb.Hold.CONFIRMED)}


def _entry_to(e: queries.Entry) -> pb.CalendarEntry:
    kind, state = _ENTRY_KIND.get(e.kind, (pb.CalendarEntry.BLOCK, pb.Hold.STATE_UNSPECIFIED))
    is_block = kind == pb.CalendarEntry.BLOCK
    return pb.CalendarEntry(
        kind=kind,
        range=pm.range_to_proto(e.range),
        hold_id="" if is_block else e.hold_id,
        block_id=e.hold_id if is_block else "",
        booking_id=e.booking_id,
        units=e.units,
        hold_state=state,
        expire_time=pm.ts(e.expires_at),
        reason=e.reason if is_block else "",
    )


_BOOKING_MODES = dict(pb.Place.BookingMode.items())


def _hit_into(out: pb.PlaceAvailability, hit: queries.SearchHit, ranges: dict) -> None:
    """Fill a result in place (field by field: a search answers up to 200 of them)."""
    (place_id, title, city, capacity, amount, currency, rating, count, time_zone, mode, photo) = hit.values
    summary = out.place
    summary.id = place_id
    summary.title = title
    summary.city = city
    summary.capacity = capacity
    summary.price_per_hour.amount_minor = amount
    summary.price_per_hour.currency_code = currency
    summary.rating_average = rating
    summary.rating_count = count
    summary.time_zone = time_zone
    summary.booking_mode = _BOOKING_MODES[mode]
    summary.cover_photo_url = photo
    messages = ranges.get(id(hit.slots))
    if messages is None:
        messages = ranges[id(hit.slots)] = [pm.range_to_proto(slot) for slot in hit.slots]
    out.next_free_slots.extend(messages)


__all__ = ["AvailabilityServicer", "slot_conflict_details", "types_pb2"]
