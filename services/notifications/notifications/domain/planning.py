"""From one event (or reminder, or announcement) and one recipient's preferences to the
notifications to record: one per enabled channel, each with its initial delivery state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from notifications.domain.model import (
    MISSING_ADDRESS_REASON,
    Channel,
    Notification,
    Preferences,
    Rendered,
    Status,
)

SUBJECT_MAX, BODY_MAX = 200, 10_000
Render = Callable[[Channel, Preferences], Rendered]


def plan_notifications(
    *,
    event_id: str | None,
    event_type: str,
    prefs: Preferences,
    render: Render,
    now: datetime,
    new_id: Callable[[], str],
    channels: tuple[Channel, ...] = tuple(Channel),
) -> list[Notification]:
    """In-app is stored as sent; a channel without an address is recorded as failed (never dropped);
    quiet hours defer e-mail and SMS to the end of the window."""
    planned = []
    for channel in channels:
        if not prefs.channel_enabled(event_type, channel):
            continue
        content = render(channel, prefs)
        address = prefs.address_for(channel)
        note = Notification(
            id=new_id(),
            user_id=prefs.user_id,
            event_id=event_id,
            event_type=event_type,
            channel=channel,
            address=address,
            subject=content.subject[:SUBJECT_MAX] if channel is not Channel.SMS else "",
            body=content.text[:BODY_MAX],
            html=content.html if channel is Channel.EMAIL else "",
            status=Status.QUEUED,
            created_at=now,
            send_after=now,
        )
        if channel is Channel.IN_APP:
            note.status, note.send_after, note.sent_at = Status.SENT, None, now
        elif not address:
            note.status, note.send_after, note.failure_reason = Status.FAILED, None, MISSING_ADDRESS_REASON[channel]
        else:
            quiet_end = prefs.quiet_until(now, channel)
            if quiet_end is not None:
                note.status, note.send_after = Status.DEFERRED, quiet_end
        planned.append(note)
    return planned
