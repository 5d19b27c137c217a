"""The waitlist end to end through the real servers: the offered waiter books the offered range with
its hold (nobody else can meanwhile), a lapsed offer goes to the next waiter, a waiter who does not
fit is skipped, units are checked at join, positions are counted, and a declined payment's freed
hold is offered too."""

from __future__ import annotations

from datetime import timedelta

from booking_support import (
    As,
    assert_lock_budget,
    create_request,
    fail,
    future_hour,
    make_place,
    refused,
    rid,
    trange,
    user,
)
from waiting import wait_until

from booking.entrypoints.workers import sweep_once
from reserva.booking.v1 import booking_pb2 as bpb

W = bpb.WaitlistEntry
HOUR = timedelta(hours=1)


def _join(place_id: str, start, end, units: int = 0) -> bpb.JoinWaitlistRequest:
    return bpb.JoinWaitlistRequest(request_id=rid(), place_id=place_id, range=trange(start, end), guests=1, units=units)


async def _entry(bstub, waiter, entry_id: str) -> bpb.WaitlistEntry:
    mine = await As(bstub, waiter).ListWaitlist(
        bpb.ListWaitlistRequest(client_id=waiter.user_id, states=[W.WAITING, W.OFFERED, W.FULFILLED, W.EXPIRED])
    )
    return next(e for e in mine.entries if e.id == entry_id)


async def _taken_then_freed(bstub, astub, days: int, *waiters, units: int = 0):
    """A booked hour with `waiters` in line for it, then cancelled: (place, span, entries)."""
    place = await make_place(astub, user("host"))
    start = future_hour(days=days)
    span = (start, start + HOUR)
    holder = user()
    booking = await As(bstub, holder).CreateBooking(create_request(place.id, span))
    entries = [await As(bstub, w).JoinWaitlist(_join(place.id, *span, units)) for w in waiters]
    await As(bstub, holder).CancelBooking(bpb.CancelBookingRequest(request_id=rid(), id=booking.id))
    return place, span, entries


async def test_the_offered_waiter_books_the_offered_range_and_nobody_else_can(bstub, astub, admin_sql, lock_readings):
    waiter, other = user(), user()
    place, span, (entry,) = await _taken_then_freed(bstub, astub, 70, waiter)
    assert (await _entry(bstub, waiter, entry.id)).state == W.OFFERED

    error = await fail(As(bstub, other).CreateBooking(create_request(place.id, span)))
    assert refused(error) == ("FAILED_PRECONDITION", "SLOT_UNAVAILABLE")
    error = await fail(As(bstub, other).CreateBooking(create_request(place.id, span, waitlist_entry_id=entry.id)))
    assert refused(error) == ("NOT_FOUND", "WAITLIST_ENTRY_NOT_FOUND")
    later = (span[0] + HOUR, span[1] + HOUR)
    error = await fail(As(bstub, waiter).CreateBooking(create_request(place.id, later, waitlist_entry_id=entry.id)))
    assert refused(error) == ("INVALID_ARGUMENT", "WAITLIST_OFFER_MISMATCH")

    request = create_request(place.id, span, waitlist_entry_id=entry.id)
    booked = await As(bstub, waiter).CreateBooking(request)
    assert booked.status == bpb.Booking.CONFIRMED
    hold = await admin_sql.fetchrow(
        "SELECT h.state, h.holder_id FROM availability.holds h JOIN booking.waitlist w ON w.hold_id = h.id::text "
        "WHERE w.id = $1::uuid",
        entry.id,
    )
    assert (hold["state"], hold["holder_id"]) == ("confirmed", waiter.user_id)
    assert (await _entry(bstub, waiter, entry.id)).state == W.FULFILLED
    assert (await As(bstub, waiter).CreateBooking(request)).id == booked.id  # a retry
    again = await fail(As(bstub, waiter).CreateBooking(create_request(place.id, span, waitlist_entry_id=entry.id)))
    assert refused(again) == ("FAILED_PRECONDITION", "WAITLIST_OFFER_NOT_ACTIVE")
    # Leaving the fulfilled entry leaves the booking's hold alone.
    await As(bstub, waiter).LeaveWaitlist(bpb.LeaveWaitlistRequest(request_id=rid(), id=entry.id))
    still = await admin_sql.fetchval(
        "SELECT h.state FROM availability.holds h JOIN booking.waitlist w ON w.hold_id = h.id::text "
        "WHERE w.id = $1::uuid",
        entry.id,
    )
    assert still == "confirmed"
    assert_lock_budget(lock_readings(), "CreateBooking", "CancelBooking")


async def test_a_lapsed_offer_expires_and_goes_to_the_next_waiter(bstub, astub, admin_sql, booking_server):
    first, second = user(), user()
    place, span, (one, two) = await _taken_then_freed(bstub, astub, 71, first, second)
    assert (await _entry(bstub, first, one.id)).state == W.OFFERED
    assert (await _entry(bstub, second, two.id)).state == W.WAITING

    # The offer's hold lapses: availability's hold is past its expiry, booking's clock past the offer's.
    for table, key in (("holds", "id"), ("calendar_entries", "hold_id")):
        await admin_sql.execute(
            f"UPDATE availability.{table} SET expires_at = now() - interval '1 minute' "
            f"WHERE {key} = (SELECT hold_id::uuid FROM booking.waitlist WHERE id = $1::uuid)",
            one.id,
        )
    later = booking_server.deps.clock() + timedelta(minutes=20)
    while await sweep_once(booking_server.deps, now=later):
        pass
    assert (await _entry(bstub, first, one.id)).state == W.EXPIRED
    assert (await _entry(bstub, second, two.id)).state == W.OFFERED
    error = await fail(As(bstub, first).CreateBooking(create_request(place.id, span, waitlist_entry_id=one.id)))
    assert refused(error) == ("FAILED_PRECONDITION", "WAITLIST_OFFER_NOT_ACTIVE")
    booked = await As(bstub, second).CreateBooking(create_request(place.id, span, waitlist_entry_id=two.id))
    assert booked.status == bpb.Booking.CONFIRMED


async def test_a_waiter_whose_range_is_still_taken_is_skipped_for_the_next(bstub, astub):
    place = await make_place(astub, user("host"))
    start = future_hour(days=72)
    holder, wide, narrow = user(), user(), user()
    freed = await As(bstub, holder).CreateBooking(create_request(place.id, (start, start + HOUR)))
    await As(bstub, user()).CreateBooking(create_request(place.id, (start + HOUR, start + 2 * HOUR)))
    wants_two_hours = await As(bstub, wide).JoinWaitlist(_join(place.id, start, start + 2 * HOUR))
    wants_one = await As(bstub, narrow).JoinWaitlist(_join(place.id, start, start + HOUR))
    await As(bstub, holder).CancelBooking(bpb.CancelBookingRequest(request_id=rid(), id=freed.id))
    assert (await _entry(bstub, wide, wants_two_hours.id)).state == W.WAITING
    assert (await _entry(bstub, narrow, wants_one.id)).state == W.OFFERED


async def test_units_are_checked_when_joining(bstub, astub):
    place = await make_place(astub, user("host"), unit_count=2)
    start = future_hour(days=73)
    await As(bstub, user()).CreateBooking(create_request(place.id, (start, start + HOUR), units=2))
    for units in (-1, 3):
        error = await fail(As(bstub, user()).JoinWaitlist(_join(place.id, start, start + HOUR, units)))
        assert refused(error) == ("INVALID_ARGUMENT", "INVALID_UNITS")
    assert (await As(bstub, user()).JoinWaitlist(_join(place.id, start, start + HOUR, 2))).units == 2


async def test_waiters_see_their_positions_in_line(bstub, astub, lock_readings):
    host = user("host")
    place = await make_place(astub, host)
    start = future_hour(days=74)
    await As(bstub, user()).CreateBooking(create_request(place.id, (start, start + 2 * HOUR)))
    waiters = [user() for _ in range(3)]
    joined = [await As(bstub, w).JoinWaitlist(_join(place.id, start, start + HOUR)) for w in waiters]
    assert [e.position for e in joined] == [1, 2, 3]
    elsewhere = await As(bstub, user()).JoinWaitlist(_join(place.id, start + HOUR, start + 2 * HOUR))
    assert elsewhere.position == 1  # a range that overlaps none of theirs has its own line
    await As(bstub, waiters[0]).LeaveWaitlist(bpb.LeaveWaitlistRequest(request_id=rid(), id=joined[0].id))
    listed = await As(bstub, host).ListWaitlist(bpb.ListWaitlistRequest(place_id=place.id))
    assert {e.id: e.position for e in listed.entries} == {joined[1].id: 1, joined[2].id: 2, elsewhere.id: 1}
    assert_lock_budget(lock_readings(), "JoinWaitlist", "ListWaitlist")


async def test_a_declined_payment_frees_the_approved_range_for_the_waitlist(bstub, astub):
    host, client, waiter = user("host"), user(), user()
    place = await make_place(astub, host, mode="request")
    start = future_hour(days=75)
    span = (start, start + HOUR)
    requested = await As(bstub, client).CreateBooking(create_request(place.id, span, token=""))
    await As(bstub, host).ApproveBooking(bpb.ApproveBookingRequest(request_id=rid(), id=requested.id))
    entry = await As(bstub, waiter).JoinWaitlist(_join(place.id, *span))
    confirm = bpb.ConfirmBookingRequest(request_id=rid(), id=requested.id, payment_method_token="tok_decline_card")
    await fail(As(bstub, client).ConfirmBooking(confirm))
    assert (await _entry(bstub, waiter, entry.id)).state == W.OFFERED


async def test_leaving_while_a_booking_takes_the_offer_releases_nothing_of_the_booking(bstub, astub, admin_sql):
    """Leave reads the entry under its row lock: a booking that took the offer meanwhile keeps it
    (before, leave read OFFERED, then overwrote FULFILLED with LEFT and released the booking's hold)."""
    import asyncio

    waiter = user()
    _, _, (entry,) = await _taken_then_freed(bstub, astub, 76, waiter)
    assert (await _entry(bstub, waiter, entry.id)).state == W.OFFERED
    hold_id = await admin_sql.fetchval("SELECT hold_id::text FROM booking.waitlist WHERE id = $1::uuid", entry.id)
    assert hold_id

    taking = admin_sql  # a booking taking the offer: the entry's row locked, FULFILLED at commit
    async with taking.transaction():
        await taking.execute("SELECT 1 FROM booking.waitlist WHERE id = $1::uuid FOR UPDATE", entry.id)
        await taking.execute("UPDATE booking.waitlist SET state = 'fulfilled' WHERE id = $1::uuid", entry.id)
        leaving = asyncio.create_task(
            As(bstub, waiter).LeaveWaitlist(bpb.LeaveWaitlistRequest(request_id=rid(), id=entry.id))
        )
        # Leave waits for the row: for its lock now, for its UPDATE before (having read OFFERED).
        pid = await taking.fetchval("SELECT pg_backend_pid()")
        blocked = "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))"
        await wait_until(lambda: taking.fetchval(blocked, pid), timeout_s=20)
    left = await leaving
    assert left.state == W.FULFILLED
    hold = await admin_sql.fetchval("SELECT state FROM availability.holds WHERE id = $1::uuid", hold_id)
    assert hold == "held"


async def test_a_booking_whose_claim_of_the_offer_runs_again_still_books_with_the_offers_hold(
    bstub, astub, admin_sql, booking_server, monkeypatch
):
    """The claim committed but its acknowledgement was lost (with_retries runs it again): the entry
    names the booking that took it, so the rerun finds its own claim instead of a taken offer."""
    from sqlalchemy.exc import DBAPIError

    from booking.adapters.repository import SqlAlchemyWaitlistRepository

    class LostAcknowledgement(Exception):
        sqlstate = "40001"  # as retryable as a serialization failure

    waiter = user()
    place, span, (entry,) = await _taken_then_freed(bstub, astub, 77, waiter)
    claims, lost = set(), []
    lock = SqlAlchemyWaitlistRepository.lock

    async def locking(self, entry_id):
        claims.add(self.session)
        return await lock(self, entry_id)

    monkeypatch.setattr(SqlAlchemyWaitlistRepository, "lock", locking)
    deps = booking_server.deps
    make_uow = deps.uow

    def uow():
        unit = make_uow()
        commit = unit.commit

        async def commit_then_lose_the_answer():
            await commit()
            if not lost and unit.session in claims:
                lost.append(True)
                raise DBAPIError("COMMIT", (), LostAcknowledgement())

        unit.commit = commit_then_lose_the_answer
        return unit

    monkeypatch.setattr(deps, "uow", uow)
    booked = await As(bstub, waiter).CreateBooking(create_request(place.id, span, waitlist_entry_id=entry.id))
    assert lost and booked.status == bpb.Booking.CONFIRMED
    hold = await admin_sql.fetchrow(
        "SELECT h.state, b.id::text AS booking_id FROM booking.waitlist w "
        "JOIN availability.holds h ON h.id::text = w.hold_id JOIN booking.bookings b ON b.hold_id = w.hold_id "
        "WHERE w.id = $1::uuid",
        entry.id,
    )
    assert (hold["state"], hold["booking_id"]) == ("confirmed", booked.id)
    assert (await _entry(bstub, waiter, entry.id)).state == W.FULFILLED
