"""Reminders fire once before a booking starts and die with the booking; webhooks arrive signed."""

import asyncio
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from notifications_support import (
    booking_confirmed,
    consumed_through,
    emails_to,
    envelope,
    history,
    publish,
    set_preferences,
    wait_until,
)

from notifications.adapters.webhook import SIGNATURE_HEADER, verify_signature
from reserva.booking.v1 import events_pb2 as booking_events
from reserva.notifications.v1 import notifications_pb2 as pb


async def test_a_reminder_fires_once_and_a_cancelled_bookings_reminder_never_does(
    notifications_factory, redis, namespace, smtp_sink
):
    import grpc

    from reserva.notifications.v1 import notifications_pb2_grpc

    service = await notifications_factory(reminder_offsets_s=[3600, 86400])
    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = notifications_pb2_grpc.NotificationServiceStub(channel)
        kept, dropped = str(uuid.uuid4()), str(uuid.uuid4())
        for user in (kept, dropped):
            await set_preferences(stub, user, ["email"], email=f"remind-{user[:8]}@example.com")
        # The service's clock stands still until both events are handled, then moves past both
        # reminders' due times: however slow the machine, each reminder exists before it is due.
        now, shift = datetime.now(UTC), timedelta()
        service.notifier.services.clock = lambda: now + shift
        # The cancelled booking's reminder is due first, the kept one's a minute later; the 24 h
        # reminders are already past and are not created.
        cancelled = booking_confirmed(dropped, str(uuid.uuid4()), start=now + timedelta(seconds=3660))
        confirmed = booking_confirmed(kept, str(uuid.uuid4()), start=now + timedelta(seconds=3720))
        for event in (cancelled, confirmed):
            await publish(redis, namespace, "booking", envelope("booking.confirmed", event, event.booking_id))
        cancellation = booking_events.BookingCancelled(
            booking_id=cancelled.booking_id,
            client_id=dropped,
            host_id=cancelled.host_id,
            place_id=cancelled.place_id,
            ranges=cancelled.ranges,
        )
        last = await publish(
            redis, namespace, "booking", envelope("booking.cancelled", cancellation, cancelled.booking_id)
        )
        await wait_until(lambda: consumed_through(redis, f"{namespace}:events:booking", last))
        shift = timedelta(minutes=3)

        reminders = await emails_to(smtp_sink, f"remind-{kept[:8]}@example.com", count=2)
        reminder = next(m for m in reminders if m["Subject"].startswith("Reminder"))
        assert reminder["Subject"] == "Reminder: your booking starts in 1 hour"
        assert confirmed.booking_id in reminder.get_body(("plain",)).get_content()

        uow = service.notifier.services.uow()
        async with uow:
            kept_rows = await uow.reminders.for_booking(confirmed.booking_id)
            dropped_rows = await uow.reminders.for_booking(cancelled.booking_id)
        assert [(r.offset_s, status) for r, status in kept_rows] == [(3600, "fired")]
        assert [(r.offset_s, status) for r, status in dropped_rows] == [(3600, "cancelled")]
        await asyncio.sleep(0.3)  # a few more worker rounds: nothing fires twice
        kept_mail = [m for m in smtp_sink.to(f"remind-{kept[:8]}@example.com") if m["Subject"].startswith("Reminder")]
        assert len(kept_mail) == 1
        dropped_mail = smtp_sink.to(f"remind-{dropped[:8]}@example.com")
        assert [m["Subject"] for m in dropped_mail if m["Subject"].startswith("Reminder")] == []


async def test_a_cancellation_handled_before_its_confirmation_leaves_the_booking_without_reminders(
    service, redis, namespace
):
    client, host = str(uuid.uuid4()), str(uuid.uuid4())
    gone, kept = booking_confirmed(client, host), booking_confirmed(client, host)
    cancellation = booking_events.BookingCancelled(
        booking_id=gone.booking_id, client_id=client, host_id=host, place_id=gone.place_id, ranges=gone.ranges
    )
    # The order of a confirmation that failed, was reclaimed after its cancellation went through,
    # or was replayed from a dead letter after it.
    await publish(redis, namespace, "booking", envelope("booking.cancelled", cancellation, gone.booking_id))
    await publish(redis, namespace, "booking", envelope("booking.confirmed", gone, gone.booking_id))
    last = await publish(redis, namespace, "booking", envelope("booking.confirmed", kept, kept.booking_id))
    await wait_until(lambda: consumed_through(redis, f"{namespace}:events:booking", last))

    async with service.notifier.services.uow() as uow:
        gone_rows = await uow.reminders.for_booking(gone.booking_id)
        kept_rows = await uow.reminders.for_booking(kept.booking_id)
    assert gone_rows == []
    assert sorted((r.offset_s, status) for r, status in kept_rows) == [(3600, "pending"), (86400, "pending")]


class _Receiver(BaseHTTPRequestHandler):
    received: list = []
    status = 204

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, dict(self.headers), body))
        self.send_response(500 if self.path == "/broken" else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
async def service(notifications_factory):
    """The service, allowed to call the webhook receiver on loopback (development and tests only)."""
    return await notifications_factory(webhook_private_targets=True)


@pytest.fixture
def webhook_receiver():
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Receiver.received
    server.shutdown()


async def _enable_webhook(stub, user, url, secret):
    await set_preferences(
        stub,
        user,
        ["webhook_url", "webhook_secret", "channel_preferences"],
        webhook_url=url,
        webhook_secret=secret,
        channel_preferences=[pb.ChannelPreference(event_type="*", channel=pb.CHANNEL_WEBHOOK, enabled=True)],
    )


async def test_a_webhook_arrives_with_a_verifiable_hmac_signature(service, stub, redis, namespace, webhook_receiver):
    base, received = webhook_receiver
    host, secret = str(uuid.uuid4()), "s3cret-" + uuid.uuid4().hex
    await _enable_webhook(stub, host, f"{base}/hooks/{host}", secret)
    event = booking_confirmed(str(uuid.uuid4()), host)
    await publish(redis, namespace, "booking", envelope("booking.confirmed", event, event.booking_id))

    [(path, headers, body)] = await wait_until(lambda: [r for r in received if r[0] == f"/hooks/{host}"])
    assert verify_signature(secret, body, headers[SIGNATURE_HEADER])
    assert not verify_signature("another-secret-123", body, headers[SIGNATURE_HEADER])
    assert not verify_signature(secret, body + b" ", headers[SIGNATURE_HEADER])
    payload = json.loads(body)
    assert payload["event_type"] == "booking.confirmed" and payload["user_id"] == host
    assert event.booking_id in payload["body"]

    async def sent():
        rows = (await history(stub, host)).notifications
        return [n for n in rows if n.channel == pb.CHANNEL_WEBHOOK and n.status == pb.Notification.SENT]

    await wait_until(sent)


async def test_a_failing_webhook_is_retried_with_backoff_then_failed(service, stub, redis, namespace, webhook_receiver):
    base, received = webhook_receiver
    host = str(uuid.uuid4())
    await _enable_webhook(stub, host, f"{base}/broken", "another-long-secret")
    event = booking_confirmed(str(uuid.uuid4()), host)
    await publish(redis, namespace, "booking", envelope("booking.confirmed", event, event.booking_id))

    async def failed():
        rows = (await history(stub, host)).notifications
        return [n for n in rows if n.channel == pb.CHANNEL_WEBHOOK and n.status == pb.Notification.FAILED]

    [row] = await wait_until(failed)
    assert (row.attempts, row.failure_reason) == (3, "webhook_http_500")
    assert len([r for r in received if json.loads(r[2])["user_id"] == host]) == 3
