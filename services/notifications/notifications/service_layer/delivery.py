"""Background work in small batches, each batch its own short transaction: sending queued
notifications (the network call happens between two transactions, never inside one), firing due
reminders, and fanning announcements out to their recipients."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from notifications.domain.model import (
    AnnouncementState,
    Channel,
    DeliveryResult,
    Notification,
    Preferences,
    Status,
)
from notifications.domain.planning import plan_notifications
from notifications.domain.routing import ANNOUNCEMENT_EVENT_TYPE, REMINDER_EVENT_TYPE
from notifications.service_layer.context import Services

log = logging.getLogger("reserva.notifications.delivery")


async def claim_notifications(svc: Services, limit: int, lease: timedelta) -> list[Notification]:
    """Marks up to `limit` due notifications 'sending' under a lease, in one short transaction."""
    async with svc.uow() as uow:
        claimed = await uow.notifications.claim_due(svc.clock(), limit, lease)
        await uow.commit()
    return claimed


async def start_send(svc: Services, note: Notification, lease: timedelta) -> tuple[datetime | None, str]:
    """Renews the claim's lease as its send starts: a batch's later sends wait for the concurrency
    gate, and a claim whose lease ran out meanwhile may be another sender's, so it is not sent (it is
    due again). Returns the new lease end (None: not to be sent) and the webhook secret."""
    async with svc.uow() as uow:
        lease_end = await uow.notifications.start_send(note.id, note.send_after, svc.clock(), lease)
        secret = ""
        if lease_end is not None and note.channel is Channel.WEBHOOK:
            prefs = await uow.preferences.get(note.user_id)
            secret = prefs.webhook_secret if prefs else ""
        await uow.commit()
    return lease_end, secret


async def deliver(svc: Services, note: Notification, lease: timedelta) -> Status | None:
    """Sends one claimed notification outside any transaction, then records the outcome; None if
    the claim's lease ran out before the send could start."""
    lease_end, secret = await start_send(svc, note, lease)
    if lease_end is None:
        return None
    sender = svc.senders.get(note.channel)
    if sender is None:
        result = DeliveryResult(False, f"{note.channel.value}_not_configured", permanent=True)
    else:
        try:
            result = await sender.send(note, secret)
        except Exception:  # an adapter bug must not leave the row 'sending' until its lease ends
            log.exception("channel adapter failed", extra={"channel": note.channel.value})
            result = DeliveryResult(False, f"{note.channel.value}_error")
    attempts = note.attempts + 1
    now = svc.clock()
    if result.ok:
        status, send_after, sent_at, reason = Status.SENT, None, now, ""
    else:
        status, send_after = svc.retry.after_failure(attempts, result, now)
        sent_at, reason = None, result.reason
    async with svc.uow() as uow:
        recorded = await uow.notifications.record_attempt(
            note.id, lease_end, status, attempts, reason, send_after, sent_at
        )
        await uow.commit()
    if not recorded:  # the send outlasted its lease and another sender claimed the row
        log.warning("result of a lost claim dropped", extra={"notification_id": note.id, "status": status.value})
    return status


async def send_due(svc: Services, limit: int, lease: timedelta, concurrency: int = 8) -> int:
    """One sender round: claim a batch, send concurrently, record each outcome. Returns the count."""
    claimed = await claim_notifications(svc, limit, lease)
    if not claimed:
        return 0
    gate = asyncio.Semaphore(concurrency)

    async def one(note: Notification) -> None:
        async with gate:
            await deliver(svc, note, lease)

    await asyncio.gather(*(one(n) for n in claimed))
    return len(claimed)


async def fire_due_reminders(svc: Services, limit: int) -> int:
    """Turns due reminders into notifications; the reminder is marked fired in the same
    transaction, so each fires once even with several workers."""
    now = svc.clock()
    async with svc.uow() as uow:
        due = await uow.reminders.claim_due(now, limit)
        if not due:
            return 0
        known = await uow.preferences.get_many(sorted({r.user_id for r in due}))
        notes: list[Notification] = []
        for reminder in due:
            prefs = known.get(reminder.user_id) or Preferences(user_id=reminder.user_id)
            context = {
                "booking_id": reminder.booking_id,
                "place_id": reminder.place_id,
                "start_time": reminder.start_time,
                "hours_before": max(1, round(reminder.offset_s / 3600)),
                "role": "client",
            }
            notes += plan_notifications(
                event_id=None,
                event_type=REMINDER_EVENT_TYPE,
                prefs=prefs,
                render=lambda channel, p, c=context: svc.renderer.render(REMINDER_EVENT_TYPE, channel, p, c),
                now=now,
                new_id=svc.new_id,
            )
        await uow.notifications.add_all(notes)
        await uow.commit()
    return len(due)


async def process_announcement_batch(svc: Services, batch_size: int) -> bool:
    """Notifies the next `batch_size` recipients of the oldest active announcement and stores the
    cursor with them: a crash loses at most an uncommitted batch, which is then redone."""
    now = svc.clock()
    async with svc.uow() as uow:
        announcement = await uow.announcements.claim_active()
        if announcement is None:
            return False
        roles, user_ids = announcement.roles, announcement.user_ids
        if announcement.state is AnnouncementState.PENDING:
            announcement.total = await uow.preferences.count_matching(roles, user_ids)
            announcement.state = AnnouncementState.SENDING
        page = await uow.preferences.page_matching(roles, user_ids, announcement.cursor, batch_size)
        context = {"subject": announcement.subject, "body": announcement.body, "role": ""}
        notes: list[Notification] = []
        for prefs in page:
            planned = plan_notifications(
                event_id=None,
                event_type=ANNOUNCEMENT_EVENT_TYPE,
                prefs=prefs,
                render=lambda channel, p: svc.renderer.render(ANNOUNCEMENT_EVENT_TYPE, channel, p, context),
                now=now,
                new_id=svc.new_id,
            )
            outward = [n for n in planned if n.channel is not Channel.IN_APP]
            if outward and all(n.status is Status.FAILED for n in outward):
                announcement.failed_count += 1
            else:
                announcement.sent_count += 1
            notes += planned
        await uow.notifications.add_all(notes)
        if page:
            announcement.cursor = page[-1].user_id
        if len(page) < batch_size:
            announcement.state, announcement.complete_time = AnnouncementState.COMPLETED, now
        await uow.announcements.save_progress(announcement)
        await uow.commit()
    return True
