"""Failure paths end in defined states: SMTP down is retried then FAILED with a reason, a crashed
consumer's messages are reclaimed and sent once, unprocessable events become dead letters that
an operator lists and replays."""

import uuid

import asyncpg
import grpc
import pytest
from notifications_support import (
    booking_confirmed,
    caller_metadata,
    consumed_through,
    emails_to,
    envelope,
    history,
    publish,
    set_preferences,
    wait_until,
)
from sqlalchemy import text

from kit.grpc_client import error_from_rpc
from kit.provision import admin_dsn
from notifications.adapters.smtp_sink import free_port
from reserva.booking.v1 import events_pb2 as booking_events
from reserva.notifications.v1 import notifications_pb2 as pb
from reserva.notifications.v1 import notifications_pb2_grpc
from reserva.payments.v1 import events_pb2 as payment_events

AGENT = caller_metadata(str(uuid.uuid4()), "agent")


async def _email_row(stub, user_id, status):
    page = await history(stub, user_id)
    return next((n for n in page.notifications if n.channel == pb.CHANNEL_EMAIL and n.status == status), None)


async def test_smtp_down_is_retried_then_failed_with_a_reason_and_nothing_is_lost(
    notifications_factory, redis, namespace
):
    service = await notifications_factory(smtp_port=free_port())  # nothing listens there
    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = notifications_pb2_grpc.NotificationServiceStub(channel)
        client = str(uuid.uuid4())
        await set_preferences(stub, client, ["email"], email=f"down-{client[:8]}@example.com")
        event = booking_confirmed(client, str(uuid.uuid4()))
        await publish(redis, namespace, "booking", envelope("booking.confirmed", event, event.booking_id))

        failed = await wait_until(lambda: _email_row(stub, client, pb.Notification.FAILED))
        assert failed.attempts == 3
        assert failed.failure_reason == "smtp_unavailable"
        page = await history(stub, client)
        assert {n.channel for n in page.notifications} == {pb.CHANNEL_EMAIL, pb.CHANNEL_IN_APP}


async def test_an_email_waiting_for_a_retry_goes_out_once_smtp_is_back(notifications_factory, redis, namespace):
    from notifications.adapters.smtp_sink import start_smtp_sink

    port = free_port()
    service = await notifications_factory(smtp_port=port, send_max_attempts=10, retry_base_s=0.2, retry_cap_s=0.4)
    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = notifications_pb2_grpc.NotificationServiceStub(channel)
        client = str(uuid.uuid4())
        address = f"back-{client[:8]}@example.com"
        await set_preferences(stub, client, ["email"], email=address)
        event = booking_confirmed(client, str(uuid.uuid4()))
        await publish(redis, namespace, "booking", envelope("booking.confirmed", event, event.booking_id))
        deferred = await wait_until(lambda: _email_row(stub, client, pb.Notification.DEFERRED))
        assert deferred.failure_reason == "smtp_unavailable" and deferred.HasField("send_time")

        sink = start_smtp_sink(port=port)
        try:
            [message] = await emails_to(sink, address)
            assert event.booking_id in message.get_body(("plain",)).get_content()
            sent = await wait_until(lambda: _email_row(stub, client, pb.Notification.SENT))
            assert sent.attempts >= 2 and sent.failure_reason == ""
        finally:
            sink.stop()


async def test_a_crashed_consumers_pending_message_is_reclaimed_and_sent_once(
    notifications_factory, redis, namespace, smtp_sink, settings_for
):
    stream = f"{namespace}:events:booking"
    await redis.xgroup_create(stream, "notifications", id="0", mkstream=True)
    client = str(uuid.uuid4())
    address = f"reclaim-{client[:8]}@example.com"
    event = booking_confirmed(client, str(uuid.uuid4()))
    message_id = await publish(redis, namespace, "booking", envelope("booking.confirmed", event, event.booking_id))
    # A consumer reads the message and dies before acknowledging it.
    taken = await redis.xreadgroup("notifications", "crashed-worker", {stream: ">"}, count=10)
    assert taken[0][1][0][0].decode() == message_id

    # The address is stored before any consumer can take the message over.
    await _store_email(settings_for, client, address)

    service = await notifications_factory()
    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = notifications_pb2_grpc.NotificationServiceStub(channel)
        await emails_to(smtp_sink, address)

        async def acknowledged():
            return (await redis.xpending(stream, "notifications"))["pending"] == 0

        await wait_until(acknowledged)
        await wait_until(lambda: _email_row(stub, client, pb.Notification.SENT))
        assert len(smtp_sink.to(address)) == 1
        page = await history(stub, client)
        assert [n.status for n in page.notifications if n.channel == pb.CHANNEL_EMAIL] == [pb.Notification.SENT]


async def _store_email(settings_for, user_id: str, address: str) -> None:
    from kit.identity import Caller
    from kit.runtime import build_runtime
    from notifications.adapters import orm
    from notifications.bootstrap import build_services
    from notifications.config import NotificationsSettings
    from notifications.service_layer.handlers import PreferencesUpdate, update_preferences

    settings = settings_for("notifications", NotificationsSettings)
    runtime = build_runtime(settings, orm.outbox)
    services, _, webhooks = build_services(settings, runtime)
    try:
        update = PreferencesUpdate(user_id, ("email",), {"email": address})
        await update_preferences(services, Caller(user_id), str(uuid.uuid4()), "fp", update)
    finally:
        await webhooks.aclose()
        await runtime.close()


@pytest.mark.parametrize(
    ("raw_factory", "code"),
    [
        (lambda: b"\xff\xfe not a protobuf", "MALFORMED_ENVELOPE"),
        (
            lambda: envelope("booking.teleported", payment_events.PaymentVoided(payment_id=str(uuid.uuid4())), "x"),
            "UNKNOWN_EVENT_TYPE",
        ),
        (
            lambda: envelope("booking.confirmed", payment_events.PaymentVoided(payment_id=str(uuid.uuid4())), "x"),
            "MALFORMED_PAYLOAD",
        ),
        (
            lambda: envelope("booking.confirmed", booking_confirmed("not-a-uuid", str(uuid.uuid4())), "x"),
            "MALFORMED_PAYLOAD",
        ),
    ],
)
async def test_unprocessable_events_are_dead_lettered_with_a_clear_reason_and_acknowledged(
    service, stub, redis, namespace, raw_factory, code
):
    raw = raw_factory()
    message_id = await publish(redis, namespace, "booking", raw)

    async def listed():
        reply = await stub.ListDeadLetters(pb.ListDeadLettersRequest(page_size=200), metadata=AGENT)
        return [d for d in reply.dead_letters if d.envelope == raw]

    [letter] = await wait_until(listed)
    assert letter.error.startswith(code)
    assert letter.envelope == raw and letter.state == pb.DeadLetter.PENDING
    assert letter.stream == f"{namespace}:events:booking" and letter.consumer_group == "notifications"
    # The letter is stored before the entry is acknowledged, so the acknowledgement may follow a moment later.
    await wait_until(lambda: consumed_through(redis, f"{namespace}:events:booking", message_id))

    replayed = await stub.ReplayDeadLetter(
        pb.ReplayDeadLetterRequest(request_id=str(uuid.uuid4()), id=letter.id), metadata=AGENT
    )
    assert replayed.state == pb.DeadLetter.REPLAY_FAILED and replayed.error.startswith(code)


async def test_an_event_failing_every_attempt_is_dead_lettered_and_replays_once_the_cause_is_gone(
    service, stub, redis, namespace, smtp_sink
):
    client = str(uuid.uuid4())
    address = f"replay-{client[:8]}@example.com"
    await set_preferences(stub, client, ["email"], email=address)
    event = booking_confirmed(client, str(uuid.uuid4()))
    event_id = str(uuid.uuid4())
    # Another transaction holds the event's dedupe row uncommitted: every attempt hits the lock timeout.
    uow = service.notifier.services.uow()
    async with uow:
        await uow.session.execute(
            text("INSERT INTO notifications.processed_events (event_id, event_type) VALUES (:e, 'x')"),
            {"e": event_id},
        )
        await publish(redis, namespace, "booking", envelope("booking.confirmed", event, event.booking_id, event_id))

        async def listed():
            reply = await stub.ListDeadLetters(
                pb.ListDeadLettersRequest(event_type="booking.confirmed"), metadata=AGENT
            )
            return [d for d in reply.dead_letters if d.event_id == event_id]

        [letter] = await wait_until(listed)
        assert letter.error.startswith("RETRIES_EXHAUSTED") and letter.attempts == 3
        assert smtp_sink.to(address) == []
    # The blocking transaction rolled back: a replay now records and sends the notification.
    request = pb.ReplayDeadLetterRequest(request_id=str(uuid.uuid4()), id=letter.id)
    replayed = await stub.ReplayDeadLetter(request, metadata=AGENT)
    assert replayed.state == pb.DeadLetter.REPLAYED and replayed.HasField("replay_time")
    await emails_to(smtp_sink, address)
    assert (await stub.ReplayDeadLetter(request, metadata=AGENT)).state == pb.DeadLetter.REPLAYED
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await stub.ReplayDeadLetter(
            pb.ReplayDeadLetterRequest(request_id=str(uuid.uuid4()), id=letter.id), metadata=AGENT
        )
    assert again.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert error_from_rpc(again.value).reason == "DEAD_LETTER_ALREADY_REPLAYED"
    remaining = await stub.ListDeadLetters(pb.ListDeadLettersRequest(event_type="booking.confirmed"), metadata=AGENT)
    assert letter.id not in [d.id for d in remaining.dead_letters]


async def test_a_failing_event_holds_back_the_later_events_of_its_booking_but_not_of_others(
    notifications_factory, redis, namespace, infra, database
):
    service = await notifications_factory(max_event_attempts=20)
    stream = f"{namespace}:events:booking"
    client, host = str(uuid.uuid4()), str(uuid.uuid4())
    stuck, other = booking_confirmed(client, host), booking_confirmed(client, host)
    cancellation = booking_events.BookingCancelled(
        booking_id=stuck.booking_id, client_id=client, host_id=host, place_id=stuck.place_id, ranges=stuck.ranges
    )
    confirmation_id = str(uuid.uuid4())
    # Another connection holds the confirmation's dedupe row uncommitted: each attempt to handle it
    # runs into the service's lock timeout.
    blocker = await asyncpg.connect(admin_dsn(infra.admin_database_url, database))
    try:
        blocking = blocker.transaction()
        await blocking.start()
        await blocker.execute(
            "INSERT INTO notifications.processed_events (event_id, event_type) VALUES ($1, 'x')", confirmation_id
        )
        confirmed = envelope("booking.confirmed", stuck, stuck.booking_id, confirmation_id)
        first = await publish(redis, namespace, "booking", confirmed)
        cancelled = await publish(
            redis, namespace, "booking", envelope("booking.cancelled", cancellation, stuck.booking_id)
        )
        last = await publish(redis, namespace, "booking", envelope("booking.confirmed", other, other.booking_id))

        async def pending() -> dict[str, int]:
            rows = await redis.xpending_range(stream, "notifications", min="-", max="+", count=100)
            return {row["message_id"].decode(): row["times_delivered"] for row in rows}

        # The confirmation failed, was reclaimed and failed again: the batch that read the
        # cancellation is long done, and the other booking went through meanwhile.
        await wait_until(lambda: _delivered_at_least(pending, first, 2))
        assert last not in await pending()
        assert await _reminder_states(service, other.booking_id) == ["pending", "pending"]
        assert cancelled in await pending()
        assert await _reminder_states(service, stuck.booking_id) == []
        await blocking.rollback()
    finally:
        await blocker.close()

    # The confirmation goes through, then the cancellation behind it: no reminder is left to fire.
    await wait_until(lambda: consumed_through(redis, stream, last))
    assert await _reminder_states(service, stuck.booking_id) == ["cancelled", "cancelled"]


async def _delivered_at_least(pending, message_id: str, times: int) -> bool:
    return (await pending()).get(message_id, 0) >= times


async def _reminder_states(service, booking_id: str) -> list[str]:
    async with service.notifier.services.uow() as uow:
        return sorted(status for _, status in await uow.reminders.for_booking(booking_id))


async def test_only_operators_see_dead_letters(stub):
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.ListDeadLetters(pb.ListDeadLettersRequest(), metadata=caller_metadata(str(uuid.uuid4())))
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error_from_rpc(denied.value).reason == "NOT_OPERATOR"
