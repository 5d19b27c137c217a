"""The availability service as the booking domain sees it: places, holds. Every call has a deadline
(PeerClient); protos stay here; a taken range comes back as SlotUnavailable with its conflicts."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from booking.adapters.proto_time import duration, from_ts, range_from_proto, range_to_proto
from booking.domain.errors import PeerUnavailable, PlaceNotFound, SlotUnavailable
from booking.domain.model import (
    BookingMode,
    DepositKind,
    DepositPolicy,
    Money,
    Place,
    RefundPolicy,
    TimeRange,
)
from kit.errors import ErrorKind, FailedPrecondition, NotFound, ReservaError
from kit.grpc_client import PeerClient, make_channel
from kit.identity import SYSTEM
from reserva.availability.v1 import availability_pb2, availability_pb2_grpc

SERVICE = "reserva.availability.v1.AvailabilityService"
IDEMPOTENT = ["GetPlace", "GetPlaces", "GetHold", "HoldSlots", "ConfirmHold", "ReleaseHold", "ApplyRating"]


@dataclass(frozen=True)
class HoldRef:
    id: str
    state: str  # held | confirmed | released | expired
    expire_time: datetime | None = None


_HOLD_STATES = {1: "held", 2: "confirmed", 3: "released", 4: "expired"}


def place_from_proto(p: availability_pb2.Place) -> Place:
    dp = p.deposit_policy
    kind = {2: DepositKind.PERCENT, 3: DepositKind.FIXED}.get(dp.kind, DepositKind.FULL_PREPAYMENT)
    cp = p.cancellation_policy
    refund = (
        RefundPolicy(cp.full_refund_notice.ToTimedelta(), cp.partial_refund_percent)
        if p.HasField("cancellation_policy")
        else RefundPolicy()
    )
    gran = p.schedule.slot_granularity.ToTimedelta() if p.schedule.HasField("slot_granularity") else timedelta(0)
    return Place(
        id=p.id,
        owner_id=p.owner_id,
        price_per_hour=Money(p.price_per_hour.amount_minor, p.price_per_hour.currency_code),
        booking_mode=BookingMode.REQUEST if p.booking_mode == 2 else BookingMode.INSTANT,
        capacity=p.capacity,
        unit_count=p.unit_count or 1,
        active=p.active,
        slot_granularity=gran or timedelta(minutes=30),
        deposit=DepositPolicy(kind, dp.percent, dp.fixed_amount.amount_minor),
        refund=refund,
        title=p.title,
        city=p.city,
        time_zone=p.time_zone,
    )


def _translate(error: ReservaError, place_id: str = "") -> ReservaError:
    if error.reason == "SLOT_UNAVAILABLE":
        conflicts: list[TimeRange] = []
        for detail in error.details.get("proto_details", []):
            if detail.Is(availability_pb2.SlotConflict.DESCRIPTOR):
                sc = availability_pb2.SlotConflict()
                detail.Unpack(sc)
                conflicts = [range_from_proto(r) for r in sc.conflicting_ranges]
        return SlotUnavailable(error.message or "the requested time is taken", conflicts, place_id)
    if error.reason == "PLACE_NOT_FOUND":
        return PlaceNotFound(place_id)
    if isinstance(error, FailedPrecondition):
        # Schedule refusals (OUTSIDE_OPENING_HOURS, INSUFFICIENT_NOTICE...) keep their reason.
        return error
    return error


class PlaceGates:
    """At most `per_place` calls in flight per place; a place's gate exists while someone uses it."""

    def __init__(self, per_place: int):
        self.per_place = per_place
        self._gates: dict[str, list] = {}  # place id -> [semaphore, users]

    @asynccontextmanager
    async def enter(self, place_id: str):
        gate = self._gates.setdefault(place_id, [asyncio.Semaphore(self.per_place), 0])
        gate[1] += 1
        try:
            async with gate[0]:
                yield
        finally:
            gate[1] -= 1
            if gate[1] == 0:
                del self._gates[place_id]


class AvailabilityClient:
    def __init__(self, peer: PeerClient, holds_per_place: int = 2):
        self.peer = peer
        self.hold_gates = PlaceGates(holds_per_place)

    @classmethod
    def connect(cls, address: str, deadline_s: float, holds_per_place: int = 2) -> AvailabilityClient:
        channel = make_channel(address, SERVICE, IDEMPOTENT)
        stub = availability_pb2_grpc.AvailabilityServiceStub(channel)
        return cls(PeerClient("availability", channel, stub, deadline_s), holds_per_place)

    async def close(self) -> None:
        await self.peer.channel.close()

    async def _call(self, method: str, request, place_id: str = ""):
        try:
            return await self.peer.call(method, request, caller=SYSTEM)
        except ReservaError as error:
            if error.kind is ErrorKind.INTERNAL:
                # A fault inside the peer is not ours to report as INTERNAL: to our caller it is a
                # dependency that failed (the flow compensates), and retrying later is safe.
                raise PeerUnavailable("the availability service failed; retry shortly", "AVAILABILITY_FAILED") from None
            raise _translate(error, place_id) from None

    async def get_place(self, place_id: str) -> Place:
        try:
            return place_from_proto(
                await self._call("GetPlace", availability_pb2.GetPlaceRequest(id=place_id), place_id)
            )
        except NotFound:
            raise PlaceNotFound(place_id) from None

    async def get_places(self, place_ids: list[str]) -> dict[str, Place]:
        """One batched call for up to 100 places; unknown ids are simply absent."""
        if not place_ids:
            return {}
        reply = await self._call("GetPlaces", availability_pb2.GetPlacesRequest(ids=list(dict.fromkeys(place_ids))))
        return {p.id: place_from_proto(p) for p in reply.places}

    async def hold_slots(
        self,
        *,
        request_id: str,
        place_id: str,
        ranges: tuple[TimeRange, ...],
        units: int,
        ttl: timedelta,
        booking_id: str,
        holder_id: str,
    ) -> HoldRef:
        request = availability_pb2.HoldSlotsRequest(
            request_id=request_id,
            place_id=place_id,
            ranges=[range_to_proto(r) for r in ranges],
            units=units,
            ttl=duration(ttl),
            booking_id=booking_id,
            holder_id=holder_id,
        )
        # Queued here, not on the place's advisory lock inside availability's PostgreSQL.
        async with self.hold_gates.enter(place_id):
            return self._hold(await self._call("HoldSlots", request, place_id))

    async def confirm_hold(self, request_id: str, hold_id: str) -> HoldRef:
        reply = await self._call(
            "ConfirmHold", availability_pb2.ConfirmHoldRequest(request_id=request_id, hold_id=hold_id)
        )
        return self._hold(reply)

    async def release_hold(self, request_id: str, hold_id: str, reason: str) -> HoldRef:
        request = availability_pb2.ReleaseHoldRequest(request_id=request_id, hold_id=hold_id, reason=reason)
        return self._hold(await self._call("ReleaseHold", request))

    async def get_hold(self, hold_id: str) -> HoldRef:
        return self._hold(await self._call("GetHold", availability_pb2.GetHoldRequest(id=hold_id)))

    async def occupied_units(self, place_id: str, wanted: TimeRange, now) -> int:
        """Units that live entries (blocks, confirmed holds, unexpired held holds) occupy somewhere
        in `wanted`, summed over the first page (200 entries: plenty to tell "taken" from "free")."""
        request = availability_pb2.ListCalendarEntriesRequest(
            place_id=place_id, time_range=range_to_proto(wanted), page_size=200
        )
        reply = await self._call("ListCalendarEntries", request, place_id)
        return sum(
            entry.units or 1
            for entry in reply.entries
            if not entry.HasField("expire_time") or from_ts(entry.expire_time) > now
        )

    async def apply_rating(self, request_id: str, place_id: str, rating: int, removed: bool) -> None:
        request = availability_pb2.ApplyRatingRequest(
            request_id=request_id, place_id=place_id, rating=rating, removed=removed
        )
        await self._call("ApplyRating", request, place_id)

    @staticmethod
    def _hold(h: availability_pb2.Hold) -> HoldRef:
        return HoldRef(
            h.id, _HOLD_STATES.get(h.state, "unknown"), from_ts(h.expire_time) if h.HasField("expire_time") else None
        )
