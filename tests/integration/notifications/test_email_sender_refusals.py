"""What a relay's refusal does to a notification, through the running service and a real SMTP server
(aiosmtpd) that refuses at a chosen step: a refusal of this message (its recipient, its data) is
permanent, while a relay that will not serve us (554 greeting) or will not take our sender (530:
authentication required, as when the relay's credentials are missing) is retried; those say the
relay or our settings are wrong, and every notification would otherwise fail for good."""

from __future__ import annotations

import uuid

import grpc
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from notifications_support import booking_confirmed, envelope, history, publish, set_preferences, wait_until
from sender_it_support import CountingHandler

from notifications.adapters.smtp_sink import free_port
from reserva.notifications.v1 import notifications_pb2 as pb
from reserva.notifications.v1 import notifications_pb2_grpc


class RefusingHandler(CountingHandler):
    def __init__(self, step: str, reply: str):
        super().__init__()
        self.step, self.reply = step, reply

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802 (aiosmtpd hook)
        if self.step == "MAIL":
            return self.reply
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.step == "RCPT":
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.step == "DATA":
            return self.reply
        return await super().handle_DATA(server, session, envelope)


class GreetingRefusal(SMTP):
    """A relay that answers every connection with a refusal instead of its 220 greeting."""

    reply = "554 5.7.1 No SMTP service here"

    async def _handle_client(self) -> None:
        await self.push(self.reply)
        self.transport.close()


class Relay(Controller):
    def __init__(self, step: str, reply: str):
        self.step, self.reply = step, reply
        super().__init__(RefusingHandler(step, reply), hostname="127.0.0.1", port=free_port())

    def factory(self):
        if self.step == "greeting":
            return type("Refusal", (GreetingRefusal,), {"reply": self.reply})(self.handler, **self.SMTP_kwargs)
        return super().factory()


@pytest.mark.parametrize(
    ("step", "reply", "status", "reason"),
    [
        ("greeting", "554 5.7.1 No SMTP service here", pb.Notification.DEFERRED, "smtp_relay_refused"),
        ("MAIL", "530 5.7.0 Authentication required", pb.Notification.DEFERRED, "smtp_sender_refused"),
        ("RCPT", "450 4.2.0 Greylisted, come back later", pb.Notification.DEFERRED, "smtp_recipient_refused"),
        ("RCPT", "550 5.1.1 No such user here", pb.Notification.FAILED, "smtp_recipient_refused"),
        ("DATA", "554 5.7.1 Message refused as spam", pb.Notification.FAILED, "smtp_rejected"),
    ],
)
async def test_only_a_refusal_of_the_message_itself_fails_the_notification_for_good(
    notifications_factory, redis, namespace, step, reply, status, reason
):
    relay = Relay(step, reply)
    relay.start()
    try:
        # A slow back-off: the first attempt's outcome stays in place while the test reads it.
        service = await notifications_factory(
            smtp_port=relay.port, send_max_attempts=10, retry_base_s=300, retry_cap_s=600
        )
        async with grpc.aio.insecure_channel(service.address) as channel:
            stub = notifications_pb2_grpc.NotificationServiceStub(channel)
            client = str(uuid.uuid4())
            await set_preferences(stub, client, ["email"], email=f"refused-{client[:8]}@example.com")
            event = booking_confirmed(client, str(uuid.uuid4()))
            await publish(redis, namespace, "booking", envelope("booking.confirmed", event, event.booking_id))

            async def attempted():
                page = await history(stub, client)
                return next((n for n in page.notifications if n.channel == pb.CHANNEL_EMAIL and n.attempts), None)

            email = await wait_until(attempted)
            assert (email.status, email.failure_reason, email.attempts) == (status, reason, 1)
            assert relay.handler.recipients == []
    finally:
        relay.stop()
