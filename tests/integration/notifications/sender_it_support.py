"""What the channel senders' tests share: a handler that counts what a real aiosmtpd server sees, and
a notification to send."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from notifications.domain.model import Channel, Notification, Status


class CountingHandler:
    """Counts connections (each greets once with EHLO) and QUITs, keeps the recipients."""

    def __init__(self):
        self.greetings, self.quits, self.recipients = 0, 0, []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802 (aiosmtpd hook)
        self.greetings += 1
        session.host_name = hostname
        return responses

    async def handle_QUIT(self, server, session, envelope):  # noqa: N802
        self.quits += 1
        return "221 Bye"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.recipients += envelope.rcpt_tos
        return "250 Message accepted for delivery"


def note(address: str, channel: Channel = Channel.EMAIL) -> Notification:
    return Notification(
        id=str(uuid.uuid4()), user_id=str(uuid.uuid4()), event_id=None, event_type="booking.confirmed",
        channel=channel, address=address, subject="Booked", body="See you", html="",
        status=Status.QUEUED, created_at=datetime.now(UTC),
    )  # fmt: skip
