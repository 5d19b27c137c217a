"""Who hears about which event. The event types every producer documents are known; those that
concern no person (calendar and hold bookkeeping) are consumed without notifications."""

from __future__ import annotations

from notifications.domain.model import IncomingEvent, Recipient

CLIENT, HOST, AGENT = "client", "host", "agent"

AUDIENCES: dict[str, tuple[str, ...]] = {
    "booking.requested": (CLIENT, HOST),
    "booking.approved": (CLIENT,),
    "booking.rejected": (CLIENT,),
    "booking.confirmed": (CLIENT, HOST),
    "booking.cancelled": (CLIENT, HOST),
    "booking.expired": (CLIENT,),
    "booking.completed": (CLIENT,),
    "booking.no_show": (CLIENT,),
    "booking.payment_failed": (CLIENT,),
    "booking.fee_unpaid": (CLIENT, AGENT),
    "booking.rescheduled": (CLIENT, HOST),
    "waitlist.offered": (CLIENT,),
    "review.created": (HOST,),
    "review.hidden": (),
    "payment.authorized": (),
    "payment.captured": (CLIENT,),
    "payment.failed": (CLIENT, AGENT),
    "payment.refunded": (CLIENT,),
    "payment.refund_failed": (CLIENT, AGENT),
    "payment.voided": (),
    "place.created": (),
    "place.updated": (),
    "hold.created": (),
    "hold.confirmed": (),
    "hold.released": (),
    "hold.expired": (),
    "calendar.time_blocked": (),
    "calendar.time_unblocked": (),
    "calendar.changed": (),
}

# Events that plan or cancel a booking's reminders (service_layer.consuming).
REMINDER_PLANNING = frozenset({"booking.confirmed", "booking.rescheduled"})
REMINDER_CANCELLING = frozenset({"booking.cancelled", "booking.expired", "booking.no_show"})

REMINDER_EVENT_TYPE = "booking.reminder"
ANNOUNCEMENT_EVENT_TYPE = "announcement"


def recipients(event: IncomingEvent, agent_ids: list[str]) -> list[Recipient]:
    """The people to notify, each once, with the role they play in the event."""
    seen: set[str] = set()
    result: list[Recipient] = []
    for role in AUDIENCES.get(event.event_type, ()):
        ids = agent_ids if role == AGENT else [event.participants.get(role, "")]
        for user_id in ids:
            if user_id and user_id not in seen:
                seen.add(user_id)
                result.append(Recipient(user_id, role))
    return result


def needs_agents(event_type: str) -> bool:
    return AGENT in AUDIENCES.get(event_type, ())


def concerns_nobody(event_type: str) -> bool:
    """A documented event that notifies no one and touches no reminder (hold and calendar
    bookkeeping, most of a booking's events): consuming it changes nothing, so it needs no
    transaction and no processed-event row. Unknown types still go the whole way (recorded)."""
    touches_reminders = event_type in REMINDER_PLANNING or event_type in REMINDER_CANCELLING
    return event_type in AUDIENCES and not AUDIENCES[event_type] and not touches_reminders
