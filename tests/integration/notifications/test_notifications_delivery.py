"""Events on the stream become e-mails in a real SMTP server, exactly once."""

import asyncio
import uuid

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

from reserva.notifications.v1 import notifications_pb2 as pb


async def test_a_confirmed_booking_produces_exactly_one_email_with_its_details(
    service, stub, redis, namespace, smtp_sink
):
    client, host = str(uuid.uuid4()), str(uuid.uuid4())
    address = f"client-{client[:8]}@example.com"
    await set_preferences(stub, client, ["email"], email=address)
    event = booking_confirmed(client, host)
    await publish(redis, namespace, "booking", envelope("booking.confirmed", event, event.booking_id))

    [message] = await emails_to(smtp_sink, address)
    assert message["Subject"] == "Booking confirmed"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert event.booking_id in text and "125.50 EUR" in text
    assert event.booking_id in html and "<h1>Booking confirmed</h1>" in html
    page = await wait_until(lambda: _with_status(stub, client, pb.CHANNEL_EMAIL, pb.Notification.SENT))
    assert page.attempts == 1
    await asyncio.sleep(0.3)
    assert len(smtp_sink.to(address)) == 1


async def _with_status(stub, user_id, channel, status):
    page = await history(stub, user_id)
    return next((n for n in page.notifications if n.channel == channel and n.status == status), None)


async def test_a_redelivered_event_sends_nothing_more(service, stub, redis, namespace, smtp_sink):
    client, host = str(uuid.uuid4()), str(uuid.uuid4())
    address = f"twice-{client[:8]}@example.com"
    await set_preferences(stub, client, ["email"], email=address)
    event = booking_confirmed(client, host)
    raw = envelope("booking.confirmed", event, event.booking_id)
    await publish(redis, namespace, "booking", raw)
    await emails_to(smtp_sink, address)
    again = await publish(redis, namespace, "booking", raw)  # the relay published it again

    # Both stream entries get read and acknowledged, and still only one e-mail and one in-app row exist.
    await wait_until(lambda: consumed_through(redis, f"{namespace}:events:booking", again))
    page = await history(stub, client)
    assert sorted(n.channel for n in page.notifications) == [pb.CHANNEL_EMAIL, pb.CHANNEL_IN_APP]
    assert len(smtp_sink.to(address)) == 1


async def test_an_event_that_concerns_nobody_is_acknowledged_without_a_transaction(
    service, stub, redis, namespace, smtp_sink
):
    from sqlalchemy import text

    from reserva.availability.v1 import events_pb2 as availability_events

    client = str(uuid.uuid4())
    address = f"hold-{client[:8]}@example.com"
    await set_preferences(stub, client, ["email"], email=address)
    hold = availability_events.HoldCreated(hold_id=str(uuid.uuid4()), place_id=str(uuid.uuid4()), holder_id=client)
    hold_event_id, confirmed_event_id = str(uuid.uuid4()), str(uuid.uuid4())
    hold_message = await publish(
        redis, namespace, "availability", envelope("hold.created", hold, hold.hold_id, hold_event_id)
    )
    confirmed = booking_confirmed(client, str(uuid.uuid4()))
    raw = envelope("booking.confirmed", confirmed, confirmed.booking_id, confirmed_event_id)
    await publish(redis, namespace, "booking", raw)
    await emails_to(smtp_sink, address)  # the booking's e-mail: the consumer has read both streams

    await wait_until(lambda: consumed_through(redis, f"{namespace}:events:availability", hold_message))
    async with service.notifier.services.uow() as uow:
        rows = await uow.session.execute(
            text("SELECT event_id FROM notifications.processed_events WHERE event_id IN (:hold, :confirmed)"),
            {"hold": hold_event_id, "confirmed": confirmed_event_id},
        )
        recorded = {row[0] for row in rows}
    assert recorded == {confirmed_event_id}  # the hold changed nothing, so nothing was written for it
    assert len(smtp_sink.to(address)) == 1


async def test_a_failed_payment_reaches_the_agents_who_told_the_service_their_role(
    service, stub, redis, namespace, smtp_sink
):
    from reserva.payments.v1 import events_pb2 as payment_events
    from reserva.type.v1 import types_pb2

    # The service notifies the first agents by user id; a zero-led id keeps this one among them
    # whatever other tests have stored.
    agent = str(uuid.UUID(int=uuid.uuid4().int >> 64))
    bystander, client = str(uuid.uuid4()), str(uuid.uuid4())
    address = f"agent-{agent[-8:]}@example.com"
    await stub.UpdatePreferences(
        pb.UpdatePreferencesRequest(
            request_id=str(uuid.uuid4()),
            preferences=pb.Preferences(user_id=agent, email=address),
            update_mask={"paths": ["email"]},
        ),
        metadata=caller_metadata(agent, "agent"),
    )
    await set_preferences(stub, bystander, ["email"], email=f"bystander-{bystander[:8]}@example.com")
    failed = payment_events.PaymentFailed(
        payment_id=str(uuid.uuid4()),
        booking_id=str(uuid.uuid4()),
        user_id=client,
        amount=types_pb2.Money(amount_minor=5000, currency_code="EUR"),
        failure_reason="card_declined",
    )
    message_id = await publish(redis, namespace, "payments", envelope("payment.failed", failed, failed.payment_id))

    [message] = await emails_to(smtp_sink, address)
    assert failed.booking_id in message.get_body(("plain",)).get_content()
    await wait_until(lambda: consumed_through(redis, f"{namespace}:events:payments", message_id))
    agent_page = await history(stub, agent)
    assert {n.channel for n in agent_page.notifications} == {pb.CHANNEL_EMAIL, pb.CHANNEL_IN_APP}
    assert (await history(stub, client)).notifications  # the paying client is told too
    assert not (await history(stub, bystander)).notifications  # a client who told no role is not


async def test_an_agent_who_is_an_agent_no_more_is_not_told_what_agents_are(service, stub, redis, namespace, smtp_sink):
    from reserva.payments.v1 import events_pb2 as payment_events

    former = str(uuid.UUID(int=uuid.uuid4().int >> 64))  # among the first agents by id, as above
    address = f"former-{former[-8:]}@example.com"
    for roles in (("agent",), ("client",)):  # an agent, then demoted: the gateway tells the new roles
        await stub.UpdatePreferences(
            pb.UpdatePreferencesRequest(
                request_id=str(uuid.uuid4()),
                preferences=pb.Preferences(user_id=former, email=address),
                update_mask={"paths": ["email"]},
            ),
            metadata=caller_metadata(former, *roles),
        )
    client = str(uuid.uuid4())
    client_address = f"payer-{client[:8]}@example.com"
    await set_preferences(stub, client, ["email"], email=client_address)
    failed = payment_events.PaymentFailed(
        payment_id=str(uuid.uuid4()), booking_id=str(uuid.uuid4()), user_id=client, failure_reason="card_declined"
    )
    message_id = await publish(redis, namespace, "payments", envelope("payment.failed", failed, failed.payment_id))
    await emails_to(smtp_sink, client_address)
    await wait_until(lambda: consumed_through(redis, f"{namespace}:events:payments", message_id))
    assert not (await history(stub, former)).notifications
    assert not smtp_sink.to(address)
