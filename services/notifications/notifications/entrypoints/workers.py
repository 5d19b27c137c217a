"""Background workers: the event consumer (Redis Streams consumer group) and the polling loops of
the sender, the reminder worker and the announcement worker."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from redis.exceptions import RedisError, ResponseError

from kit.context import current_operation
from notifications.adapters.event_codec import aggregate_of, decode, envelope_header, trace_context_of
from notifications.domain.errors import EventRejected
from notifications.service_layer.consuming import record_dead_letter, record_event
from notifications.service_layer.context import Services

log = logging.getLogger("reserva.notifications.workers")
_tracer = trace.get_tracer("reserva.notifications.consumer")


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def _lane(fields: dict, message_id: str) -> str:
    raw = fields.get(b"envelope", fields.get("envelope"))
    if raw is not None:
        try:
            aggregate = aggregate_of(raw)
        except Exception:  # malformed: its own lane; handle() dead-letters it
            aggregate = ""
        if aggregate:
            return aggregate
    return message_id


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class EventConsumer:
    """Reads the event streams with XREADGROUP and acknowledges a message only once its
    notifications are committed (or it is dead-lettered). Messages left pending by a crashed
    consumer are taken over with XAUTOCLAIM once idle for `claim_idle_ms`; a message delivered
    `max_attempts` times without success becomes a dead letter."""

    def __init__(
        self,
        svc: Services,
        redis,
        streams: list[str],
        group: str,
        consumer: str,
        *,
        batch: int = 50,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        claim_interval_s: float = 5.0,
        max_attempts: int = 5,
        concurrency: int = 8,
        on_recorded: Callable[[], None] = lambda: None,
    ):
        self.svc, self.redis, self.streams, self.group, self.consumer = svc, redis, streams, group, consumer
        self.batch, self.block_ms = batch, block_ms
        self.claim_idle_ms, self.claim_interval_s, self.max_attempts = claim_idle_ms, claim_interval_s, max_attempts
        self.on_recorded = on_recorded
        self.concurrency = concurrency
        self._last_error: dict[tuple[str, str], str] = {}
        # Lane -> (stream, message id) of its event that failed and is still pending: the lane's
        # later events are left pending too until that one is acknowledged or dead-lettered.
        self._held: dict[str, tuple[str, str]] = {}

    async def ensure_groups(self) -> None:
        for stream in self.streams:
            try:
                await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except ResponseError as error:
                if "BUSYGROUP" not in str(error):
                    raise

    async def run(self, stop: asyncio.Event) -> None:
        current_operation.set("consume_event")  # this task's own context: names its transactions
        backoff, groups_ready, next_claim = 0.1, False, 0.0
        while not stop.is_set():
            try:
                if not groups_ready:
                    await self.ensure_groups()
                    groups_ready = True
                if time.monotonic() >= next_claim:
                    await self.reclaim()
                    next_claim = time.monotonic() + self.claim_interval_s
                await self.read_new()
                backoff = 0.1
            except (RedisError, OSError) as error:
                if "NOGROUP" in str(error):
                    # Redis came back empty (restarted without persistence): the streams are
                    # re-filled by the outbox relays, the group must be created again.
                    groups_ready = False
                log.warning("event stream unavailable; retrying", extra={"error": repr(error)})
                await _sleep_unless(stop, backoff)
                backoff = min(backoff * 2, 5.0)

    async def read_new(self) -> int:
        replies = await self.redis.xreadgroup(
            self.group, self.consumer, {s: ">" for s in self.streams}, count=self.batch, block=self.block_ms
        )
        items = [
            (_text(stream), _text(message_id), fields, 1)
            for stream, messages in replies or []
            for message_id, fields in messages
        ]
        await self.handle_all(items)
        return len(items)

    async def handle_all(self, items: list[tuple[str, str, dict, int]]) -> None:
        """Handles a batch concurrently in lanes, one lane per aggregate, so that the events of one
        booking keep their stream order (a cancellation never overtakes its confirmation). A lane
        stops at an event that fails and stays pending: the aggregate's later events, in this batch
        and the next ones, stay pending behind it until it is settled, and are reclaimed after it."""
        lanes: dict[str, list] = defaultdict(list)
        for item in items:
            lanes[_lane(item[2], item[1])].append(item)
        gate = asyncio.Semaphore(self.concurrency)

        async def run_lane(key: str, lane: list) -> None:
            async with gate:
                for stream, message_id, fields, delivered in lane:
                    held = self._held.get(key)
                    if held is not None and held != (stream, message_id):
                        return  # an earlier event of this aggregate is pending: the rest waits
                    if await self.handle(stream, message_id, fields, delivered):
                        self._held.pop(key, None)
                    else:
                        self._held[key] = (stream, message_id)
                        return

        await asyncio.gather(*(run_lane(key, lane) for key, lane in lanes.items()))

    async def reclaim(self) -> int:
        """Takes over messages idle past `claim_idle_ms`, whoever held them, and retries them.
        XAUTOCLAIM scans the pending entries in ID order, so an aggregate's events come back in
        stream order, its failed event first; a later event that comes back without it (retried
        again meanwhile, so not idle long enough yet) stays pending behind its hold."""
        await self._release_settled_holds()
        handled = 0
        for stream in self.streams:
            start = "0-0"
            while True:
                reply = await self.redis.xautoclaim(
                    stream, self.group, self.consumer, self.claim_idle_ms, start_id=start, count=self.batch
                )
                next_start, messages = _text(reply[0]), reply[1]
                counts = await self._delivery_counts(stream, [_text(m[0]) for m in messages if m])
                items = []
                for message_id, fields in (m for m in messages if m):
                    message_id = _text(message_id)
                    if not fields:  # trimmed from the stream meanwhile: nothing left to process
                        await self.redis.xack(stream, self.group, message_id)
                        continue
                    items.append((stream, message_id, fields, counts.get(message_id, 1)))
                await self.handle_all(items)
                handled += len(items)
                if next_start == "0-0" or not messages:
                    break
                start = next_start
        return handled

    async def _release_settled_holds(self) -> None:
        """Forgets the holds whose failed event is no longer pending in the group: another consumer
        took it over and acknowledged or dead-lettered it. One still pending anywhere keeps its hold."""
        if not self._held:
            return
        holds = list(self._held.items())
        pipe = self.redis.pipeline(transaction=False)
        for _, (stream, message_id) in holds:
            pipe.xpending_range(stream, self.group, min=message_id, max=message_id, count=1)
        for (key, held), rows in zip(holds, await pipe.execute(), strict=True):
            if not rows and self._held.get(key) == held:
                del self._held[key]

    async def _delivery_counts(self, stream: str, ids: list[str]) -> dict[str, int]:
        if not ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for message_id in ids:
            pipe.xpending_range(stream, self.group, min=message_id, max=message_id, count=1)
        counts = {}
        for rows in await pipe.execute():
            for row in rows:
                counts[_text(row["message_id"])] = int(row["times_delivered"])
        return counts

    async def handle(self, stream: str, message_id: str, fields: dict, delivered: int) -> bool:
        """Process one event in a consumer span that continues the trace of the request whose
        transaction wrote the event (the outbox stores its trace context in the envelope). True once
        the message is settled (acknowledged, or dead-lettered); False if it stays pending."""
        raw = fields.get(b"envelope", fields.get("envelope"))
        producer = propagate.extract(trace_context_of(raw)) if raw else None
        name = "process " + ":".join(stream.rsplit(":", 2)[-2:])  # e.g. "process events:booking"
        with _tracer.start_as_current_span(name, context=producer, kind=SpanKind.CONSUMER) as span:
            span.set_attribute("messaging.message.id", message_id)
            return await self._handle(stream, message_id, raw, delivered)

    async def _handle(self, stream: str, message_id: str, raw: bytes | None, delivered: int) -> bool:
        key = (stream, message_id)
        try:
            if raw is None:
                raise EventRejected("MALFORMED_ENVELOPE", "the stream entry has no 'envelope' field")
            notes = await record_event(self.svc, decode(raw))
        except EventRejected as rejected:
            return await self._dead_letter(stream, message_id, raw or b"", str(rejected), delivered)
        except Exception as error:  # database trouble, a bug: leave it pending, retry after claim_idle
            code = f"PROCESSING_FAILED: {type(error).__name__}"
            self._last_error[key] = code
            log.warning("event processing failed", extra={"stream": stream, "id": message_id, "error": code})
            if delivered >= self.max_attempts:
                return await self._dead_letter(
                    stream, message_id, raw, f"RETRIES_EXHAUSTED: last error {code}", delivered
                )
            return False
        await self.redis.xack(stream, self.group, message_id)
        self._last_error.pop(key, None)
        if notes:
            self.on_recorded()
        return True

    async def _dead_letter(self, stream: str, message_id: str, raw: bytes, error: str, attempts: int) -> bool:
        try:
            await record_dead_letter(
                self.svc,
                stream=stream,
                group=self.group,
                message_id=message_id,
                envelope=raw,
                header=envelope_header(raw),
                error=error,
                attempts=attempts,
            )
        except Exception:  # the database is down: keep the message pending, retry later
            log.exception("could not store a dead letter; the message stays pending")
            return False
        await self.redis.xack(stream, self.group, message_id)
        self._last_error.pop((stream, message_id), None)
        log.warning("event dead-lettered", extra={"stream": stream, "id": message_id, "error": error[:200]})
        return True


async def _sleep_unless(stop: asyncio.Event, seconds: float, wake: asyncio.Event | None = None) -> None:
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    if wake is not None:
        wake.clear()


def polling_worker(
    name: str, step: Callable[[], Awaitable[int | bool]], idle_s: float, wake: asyncio.Event | None = None
):
    """A worker that runs `step` again at once while it finds work, and otherwise sleeps `idle_s`
    (or until woken). Errors are logged and retried with back-off; the loop never dies."""

    async def run(stop: asyncio.Event) -> None:
        current_operation.set(name)
        backoff = idle_s
        while not stop.is_set():
            try:
                if await step():
                    backoff = idle_s
                    continue
                backoff = idle_s
            except Exception:
                log.exception("worker step failed", extra={"worker": name})
                backoff = min(max(backoff, 0.05) * 2, 5.0)
            await _sleep_unless(stop, backoff, wake)

    run.__name__ = name
    return run
