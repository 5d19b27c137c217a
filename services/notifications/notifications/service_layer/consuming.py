"""Turning consumed events into recorded notifications, exactly once per event id, and keeping
events that cannot be processed as dead letters."""

from __future__ import annotations

from jinja2 import TemplateError

from notifications.domain.errors import EventRejected
from notifications.domain.model import DeadLetter, IncomingEvent, Notification, Preferences, reminders_for
from notifications.domain.planning import plan_notifications
from notifications.domain.routing import (
    AGENT,
    CLIENT,
    REMINDER_CANCELLING,
    REMINDER_PLANNING,
    concerns_nobody,
    needs_agents,
    recipients,
)
from notifications.service_layer.context import Services


async def record_event(svc: Services, event: IncomingEvent) -> list[Notification] | None:
    """Records the event's notifications and reminder changes in one transaction with its
    processed-event row. Returns None for an event id already processed (nothing changes); an
    event that concerns nobody is consumed without a transaction (it would change nothing)."""
    if concerns_nobody(event.event_type):
        return []
    now = svc.clock()
    async with svc.uow() as uow:
        if not await uow.processed_events.claim(event.event_id, event.event_type):
            return None
        agents = await uow.preferences.with_role(AGENT, svc.max_agents) if needs_agents(event.event_type) else []
        people = recipients(event, [a.user_id for a in agents])
        known = {a.user_id: a for a in agents} | await uow.preferences.get_many([p.user_id for p in people])
        notes: list[Notification] = []
        for person in people:
            prefs = known.get(person.user_id) or Preferences(user_id=person.user_id)
            context = {**event.facts, "role": person.role}
            notes += plan_notifications(
                event_id=event.event_id,
                event_type=event.event_type,
                prefs=prefs,
                render=_renderer(svc, event.event_type, context),
                now=now,
                new_id=svc.new_id,
            )
        await uow.notifications.add_all(notes)
        await _update_reminders(svc, uow, event, now)
        await uow.commit()
    return notes


def _renderer(svc: Services, event_type: str, context: dict):
    def render(channel, prefs):
        try:
            return svc.renderer.render(event_type, channel, prefs, context)
        except (TemplateError, LookupError, TypeError, ValueError) as error:
            raise EventRejected("TEMPLATE_ERROR", f"{event_type} template failed: {type(error).__name__}") from error

    return render


async def _update_reminders(svc: Services, uow, event: IncomingEvent, now) -> None:
    # Both branches lock the booking's row before touching its reminders: a cancellation waits for a
    # planning in flight and then sees its reminders, and a planning that comes after the booking's
    # end (in any order of delivery) plans nothing.
    booking_id = str(event.facts.get("booking_id") or "")
    if event.event_type in REMINDER_PLANNING and event.booking_start:
        if await uow.reminders.lock_booking(booking_id) is not None:
            return
        client = event.participants[CLIENT]
        planned = reminders_for(
            booking_id,
            client,
            str(event.facts.get("place_id") or ""),
            event.booking_start,
            svc.reminder_offsets_s,
            now,
            svc.new_id,
        )
        if event.event_type == "booking.rescheduled":
            await uow.reminders.cancel_for_booking(booking_id)
        await uow.reminders.add_all(planned, rearm=event.event_type == "booking.rescheduled")
    elif event.event_type in REMINDER_CANCELLING and booking_id:
        await uow.reminders.end_booking(booking_id, event.event_type, now)
        await uow.reminders.cancel_for_booking(booking_id)


async def record_dead_letter(
    svc: Services, *, stream: str, group: str, message_id: str, envelope: bytes, header, error: str, attempts: int
) -> None:
    """Keeps an unprocessable message for operators; idempotent per stream message."""
    event_id, event_type = header
    letter = DeadLetter(
        id=svc.new_id(),
        stream=stream,
        consumer_group=group,
        message_id=message_id,
        event_id=event_id,
        event_type=event_type,
        envelope=envelope,
        error=error,
        attempts=attempts,
        create_time=svc.clock(),
    )
    async with svc.uow() as uow:
        await uow.dead_letters.add(letter)
        await uow.commit()
