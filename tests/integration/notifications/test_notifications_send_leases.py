"""Two senders sharing the queue never both send one notification: a claimed notification whose lease
ran out while it waited for its turn is not sent by its first claimer, and the late result of a send
that outlasted its lease does not overwrite what the sender that claimed it next recorded. Against
the real database and a real SMTP server (aiosmtpd) whose answers to DATA the test paces; the
senders' clock stands in 2001, where no other test's notification is due."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from notifications_support import wait_until

from notifications.adapters.email_sender import SmtpConfig, SmtpEmailSender
from notifications.adapters.smtp_sink import free_port
from notifications.domain.model import Channel, Notification, Status
from notifications.service_layer.delivery import send_due

LEASE = timedelta(seconds=60)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


class PacedRelay:
    """Each DATA first runs the next scripted step in a thread (it may wait), then answers the
    step's reply; once the script is used up, DATA answers 250 at once."""

    def __init__(self):
        self.port, self.accepted, self.data_calls = free_port(), [], 0
        self.script: list[tuple[Callable[[], object], str]] = []
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd hook)
        self.data_calls += 1
        step, reply = self.script.pop(0) if self.script else (lambda: None, "250 OK")
        await asyncio.to_thread(step)
        if reply.startswith("250"):
            self.accepted += envelope.rcpt_tos
        return reply


@pytest.fixture
def relay():
    server = PacedRelay()
    yield server
    server.controller.stop()


@pytest.fixture
async def quiet_service(notifications_factory):
    """The service's own sender lives in 1990, before every row these tests write."""
    service = await notifications_factory(poll_interval_s=3600)
    service.notifier.services.clock = lambda: datetime(1990, 1, 1, tzinfo=UTC)
    return service


@pytest.fixture
async def replica(quiet_service, relay):
    """replica(clock) -> the service's use cases with their own SMTP connections, as another
    process of the service would have."""
    senders = []

    def make(clock: Clock):
        sender = SmtpEmailSender(SmtpConfig(port=relay.port))
        senders.append(sender)
        return replace(quiet_service.notifier.services, clock=clock, senders={Channel.EMAIL: sender})

    yield make
    for sender in senders:
        await sender.aclose()


async def _queue(services, clock: Clock, count: int) -> tuple[str, list[str]]:
    event_id = f"lease-test-{uuid.uuid4()}"
    notes = [
        Notification(
            id=str(uuid.uuid4()),
            user_id=str(uuid.uuid4()),
            event_id=event_id,
            event_type="booking.confirmed",
            channel=Channel.EMAIL,
            address=f"lease-{i}-{event_id[-8:]}@example.com",
            subject="Booked",
            body="See you",
            html="",
            status=Status.QUEUED,
            created_at=clock.now,
            send_after=clock.now,
        )  # fmt: skip
        for i in range(count)
    ]
    async with services.uow() as uow:
        await uow.notifications.add_all(notes)
        await uow.commit()
    return event_id, [n.address for n in notes]


async def _rows(services, event_id: str) -> list[Notification]:
    async with services.uow() as uow:
        return await uow.notifications.by_event(event_id)


async def test_a_claim_whose_lease_ran_out_before_its_turn_is_left_to_the_next_claimer(replica, relay):
    clock = Clock(datetime(2001, 1, 1, tzinfo=UTC))
    first, second = replica(clock), replica(clock)
    event_id, addresses = await _queue(first, clock, 2)
    # The relay takes longer than the lease for the first message; the second one waited for the
    # one send at a time (concurrency 1) and its lease is over when its turn comes.
    relay.script = [(lambda: clock.advance(LEASE + timedelta(seconds=1)), "250 OK")]

    assert await send_due(first, 10, LEASE, concurrency=1) == 2
    assert len(relay.accepted) == 1
    assert {n.status for n in await _rows(first, event_id)} == {Status.SENT, Status.SENDING}

    assert await send_due(second, 10, LEASE) == 1  # due again: the other process takes it
    assert sorted(relay.accepted) == sorted(addresses)  # each once
    rows = await _rows(first, event_id)
    assert [(n.status, n.attempts) for n in rows] == [(Status.SENT, 1)] * 2


async def test_the_late_result_of_a_send_that_outlasted_its_lease_does_not_overwrite_the_next_claimers(replica, relay):
    clock = Clock(datetime(2001, 1, 1, tzinfo=UTC))
    first, second = replica(clock), replica(clock)
    event_id, [address] = await _queue(first, clock, 1)
    first_answers, second_answers = threading.Event(), threading.Event()
    relay.script = [
        (lambda: first_answers.wait(30), "451 4.3.0 try again later"),
        (lambda: second_answers.wait(30), "250 OK"),
    ]

    first_round = asyncio.create_task(send_due(first, 10, LEASE))
    await wait_until(lambda: relay.data_calls == 1)
    clock.advance(LEASE + timedelta(seconds=1))  # the first send outlasts its lease...
    second_round = asyncio.create_task(send_due(second, 10, LEASE))
    await wait_until(lambda: relay.data_calls == 2)  # ...and the other process claimed and sends it
    first_answers.set()
    assert await first_round == 1  # the first send's failure comes in while the second one runs
    second_answers.set()
    assert await second_round == 1

    [row] = await _rows(first, event_id)
    assert (row.status, row.attempts, row.failure_reason) == (Status.SENT, 1, "")
    assert relay.accepted == [address]
