"""Place ratings from the booking service's review events: `review.created` adds a rating to the
place, `review.hidden` takes it away. The events come from booking's outbox on its Redis stream;
this consumer group reads them and applies each once (ApplyRating is idempotent by the event id),
so a redelivery, a reclaim after a crash or a replay from the start changes nothing twice."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket

from google.protobuf.message import DecodeError
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from redis.exceptions import RedisError, ResponseError

from availability.domain.errors import PlaceNotFound
from availability.service_layer.handlers import Deps, apply_rating
from kit.context import current_operation
from kit.errors import InvalidArgument
from kit.outbox import stream_name
from kit.pauses import pause
from reserva.booking.v1 import events_pb2 as booking_events
from reserva.events.v1 import envelope_pb2

log = logging.getLogger("availability.ratings")
_tracer = trace.get_tracer("reserva.availability.ratings")

GROUP = "availability-ratings"
RATING_EVENTS = {
    "review.created": (booking_events.ReviewCreated, False),
    "review.hidden": (booking_events.ReviewHidden, True),
}


class RatingConsumer:
    def __init__(
        self, deps: Deps, redis, namespace: str, block_ms: int = 1000, claim_idle_ms: int = 30_000, batch: int = 100
    ):
        self.deps, self.redis = deps, redis
        self.stream = stream_name(namespace, "booking")
        self.block_ms, self.claim_idle_ms, self.batch = block_ms, claim_idle_ms, batch
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"

    async def ensure_group(self) -> None:
        """From the stream's start: reviews written before this group existed count too."""
        try:
            await self.redis.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def run(self, stop: asyncio.Event) -> None:
        current_operation.set("apply_review_ratings")
        loop = asyncio.get_running_loop()
        next_claim = 0.0
        while not stop.is_set():
            try:
                await self.ensure_group()
                while not stop.is_set():
                    if loop.time() >= next_claim:  # pending events are retried once idle long enough
                        await self.reclaim()
                        next_claim = loop.time() + self.claim_idle_ms / 2000
                    read = await self.redis.xreadgroup(
                        GROUP, self.consumer, {self.stream: ">"}, count=self.batch, block=self.block_ms
                    )
                    for _, messages in read or []:
                        await self.handle_all(messages)
            except (RedisError, OSError) as error:  # Redis away: ratings wait, nothing is lost
                log.warning("review ratings paused", extra={"error": repr(error)[:300]})
                await pause(stop, 1.0)

    async def reclaim(self) -> int:
        """Retries the events that stayed pending (a failed apply, a consumer that died)."""
        _, claimed, *_ = await self.redis.xautoclaim(
            self.stream, GROUP, self.consumer, self.claim_idle_ms, start_id="0-0", count=self.batch
        )
        await self.handle_all(claimed)
        return len(claimed)

    async def handle_all(self, messages) -> None:
        """Applies the batch's review ratings; acknowledges every event settled, in one XACK (most
        of booking's events are not reviews, and an entry trimmed from the stream comes back empty)."""
        settled = [message_id for message_id, fields in messages if not fields or await self.handle(fields)]
        if settled:
            await self.redis.xack(self.stream, GROUP, *settled)

    async def handle(self, fields: dict) -> bool:
        """Applies a review event's rating. True once the event is settled (applied, or nothing to
        apply); False if it stays pending (the database was away): retried after claim_idle_ms."""
        raw = fields.get(b"envelope", fields.get("envelope"))
        try:
            envelope = envelope_pb2.EventEnvelope.FromString(raw) if raw else None
        except DecodeError:
            envelope = None  # not an event this service can read: nothing to rate (notifications dead-letters it)
        if envelope is None or envelope.event_type not in RATING_EVENTS:
            return True
        kind, removed = RATING_EVENTS[envelope.event_type]
        producer = propagate.extract(dict(envelope.trace_context))
        with _tracer.start_as_current_span("process events:booking", context=producer, kind=SpanKind.CONSUMER):
            try:
                await self._apply(envelope, kind, removed)
            except (PlaceNotFound, InvalidArgument) as refused:  # a deleted place, a rating out of range
                log.warning(
                    "a review's rating was not applied", extra={"event_id": envelope.event_id, "reason": refused.reason}
                )
            except Exception as error:
                log.warning(
                    "a review's rating could not be applied now; retried later",
                    extra={"event_id": envelope.event_id, "error": repr(error)[:300]},
                )
                return False
        return True

    async def _apply(self, envelope, kind, removed: bool) -> None:
        event = kind()
        if not envelope.payload.Unpack(event):
            raise InvalidArgument(f"the payload of {envelope.event_type} is not a {kind.DESCRIPTOR.name}")
        # The event id is the request id: one application per event, whoever delivers it.
        fingerprint = hashlib.sha256(f"{event.place_id}|{event.rating}|{removed}".encode()).hexdigest()
        await apply_rating(self.deps, envelope.event_id, fingerprint, event.place_id, event.rating, removed)
