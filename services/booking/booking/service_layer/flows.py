"""Multi-service flows, each a persisted saga: hold slots (availability) -> authorize payment
(payments) -> confirm hold -> capture -> mark confirmed, with named compensations.

Rules: no transaction spans a gRPC call (each step is: call the peer, then persist the outcome in
its own short transaction); every peer call carries a request id derived from the booking, so a
repeated step is the same call; the saga state is stored on the booking, so the recovery worker can
resume or compensate a booking whose flow was interrupted."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from opentelemetry import metrics

from booking.domain.errors import BookingPaymentDeclined, IllegalStatusTransition, SlotUnavailable, StaleEtag
from booking.domain.model import (
    SYSTEM_ACTOR,
    Booking,
    BookingMode,
    Money,
    SagaState,
    Status,
    derived_request_id,
)
from booking.service_layer.admission import Admission
from kit.db import with_retries
from kit.errors import FailedPrecondition, NotFound, ReservaError, Unavailable

log = logging.getLogger("reserva.booking.saga")
_transitions = metrics.get_meter("reserva.booking.saga").create_counter(
    "reserva.booking.saga.transitions",
    unit="{transition}",
    description="saga steps persisted: the state left, the state entered and the booking's status then",
)


def _count_transition(before: SagaState, booking: Booking) -> None:
    if booking.saga_state is not before:
        _transitions.add(
            1, {"from_state": before.value, "to_state": booking.saga_state.value, "status": booking.status.value}
        )


def _copy(booking: Booking) -> Booking:
    """A copy a saga step may change freely: every field but the lists is immutable (frozen value
    objects, tuples, strings), so a shallow copy with fresh lists is as good as a deep one, and much
    cheaper on the hot path."""
    twin = copy.copy(booking)
    twin.history, twin.new_history, twin.events = list(booking.history), list(booking.new_history), list(booking.events)
    return twin


# Why an occurrence of an all-or-nothing series was undone: another one could not be booked.
SERIES_NOT_BOOKED = "series_not_booked"


class SimulatedCrash(Exception):  # noqa: N818 - it stands for a process death, not an error
    """Test-only: the process 'dies' after a saga step (settings.saga_crash_after_step)."""


@dataclass
class Deps:
    """What the flows and handlers need; built by bootstrap (the composition root)."""

    uow: Callable  # () -> BookingUnitOfWork
    availability: object  # AvailabilityClient
    payments: object  # PaymentsClient
    settings: object  # BookingSettings
    clock: Callable[[], datetime]
    place_cache: object | None = None
    admission: Admission | None = None

    @property
    def recovery_after(self) -> timedelta:
        return timedelta(seconds=self.settings.saga_recovery_after_s)


class _SeriesLease:
    """Keeps the recovery worker off a live series' occurrences: the ones waiting for their turn
    would otherwise come due (each step leases only its own occurrence) and be undone or finished
    under the flow's feet. Renewed before each phase and whenever half the lease has passed."""

    def __init__(self, saga: BookingSaga, occurrences: list[Booking]):
        self.saga, self.ids, self.renewed = saga, [b.id for b in occurrences], None

    async def renew(self, force: bool = False) -> None:
        d = self.saga.d
        now = d.clock()
        if not force and self.renewed is not None and now < self.renewed + d.recovery_after / 2:
            return

        async def extend() -> None:
            async with d.uow() as uow:
                await uow.bookings.extend_leases(self.ids, now + d.recovery_after)
                await uow.commit()

        await with_retries(extend)
        self.renewed = now


class BookingSaga:
    def __init__(self, deps: Deps):
        self.d = deps

    # ----- persistence of one step ----------------------------------------------------------
    async def persist(
        self, booking_id: str, change: Callable[[Booking, datetime], None], known: Booking | None = None
    ) -> Booking:
        """Load the booking, apply `change`, save it (version-checked) with its events. One transaction.

        `known`: the copy this flow itself wrote last. The step is applied to a copy of it without
        reading the row again; the UPDATE's version check proves nobody changed the booking since
        (every writer bumps the version). If somebody did (StaleEtag), the step is applied to the
        row as it is now, exactly as without `known`. Saves a round trip per saga step."""

        async def attempt(base: Booking | None) -> Booking:
            async with self.d.uow() as uow:
                booking = _copy(base) if base is not None else await uow.bookings.get(booking_id)
                expected, before = booking.version, booking.saga_state
                change(booking, self.d.clock())
                if base is not None:
                    # One statement: the version-checked UPDATE, its history and its events, or nothing.
                    uow.lone_statement()
                    uow.collect(booking)
                    await uow.bookings.save(booking, expected, events=uow.events_in_statement)
                else:
                    await uow.bookings.save(booking, expected)
                    uow.collect(booking)
                await uow.commit()
                _count_transition(before, booking)
                return booking

        if known is not None and not known.events and not known.new_history:
            try:
                return await with_retries(lambda: attempt(known))
            except StaleEtag:
                pass  # changed meanwhile (a cancellation, the recovery worker): read it again
        return await with_retries(lambda: attempt(None))

    def _checkpoint(self, step: str) -> None:
        if self.d.settings.saga_crash_after_step == step:
            raise SimulatedCrash(f"simulated crash after {step}")

    # ----- INSTANT: the whole story ---------------------------------------------------------
    async def book_instantly(self, booking: Booking, payment_token: str) -> Booking:
        """HELD booking (saga 'holding') -> CONFIRMED, or a terminal failure with compensations done."""
        booking = await self.hold_slots(booking, ttl=timedelta(seconds=self.d.settings.hold_ttl_s))
        return await self.book_held(booking, payment_token)

    async def book_held(self, booking: Booking, payment_token: str) -> Booking:
        """An INSTANT booking that holds its slots already (a waitlist offer's hold, taken by
        take_offer) -> CONFIRMED, or a terminal failure with compensations done."""
        booking = await self.authorize_payment(booking, payment_token, step="authorize")
        return await self.confirm_and_capture(booking)

    async def take_offer(self, booking: Booking, entry_id: str) -> Booking:
        """The booking takes its client's waitlist offer. One transaction claims the entry (locked,
        still OFFERED and unexpired -> FULFILLED by this booking) and makes the offer's hold the
        booking's, so a claimed offer always has the booking that holds it: a crash after it leaves
        the recovery worker a booking whose hold it releases like any other, and one before it an
        offer still OFFERED. The entry names the booking that took it, so the claim run again by the
        same booking (its commit's acknowledgement lost) finds its own claim. An offer that lapsed
        or was taken rejects an INSTANT booking (WAITLIST_OFFER_NOT_ACTIVE). A REQUEST place's
        booking waits for the host, whose approval holds the range anew: the offer's hold is
        released for it, and the request stands either way."""

        async def claim(base: Booking) -> tuple[Booking, str]:
            async with self.d.uow() as uow:
                entry = await uow.waitlist.lock(entry_id)
                if entry is not None and entry.taken_by(base.id):  # this claim, run again
                    return await uow.bookings.get(base.id), entry.hold_id
                now = self.d.clock()
                if entry is None or not entry.offer_active(now) or base.status not in (Status.HELD, Status.REQUESTED):
                    return base, ""
                entry.fulfil(base.id, now)
                await uow.waitlist.save(entry)
                b = _copy(base)
                if b.status is Status.HELD:
                    b.hold_id = entry.hold_id
                    b.set_saga(SagaState.AUTHORIZING, now, self.d.recovery_after)
                    # Checked against the version this flow knows instead of reading the row: the
                    # read's locks would take the transaction past the lock budget.
                    await uow.bookings.save(b, base.version)
                await uow.commit()
                _count_transition(base.saga_state, b)
                return b, entry.hold_id

        try:
            claimed, hold_id = await with_retries(lambda: claim(booking))
        except StaleEtag:  # changed meanwhile (the recovery worker): claim for the booking as it is now
            current = await self.reload(booking.id)
            claimed, hold_id = await with_retries(lambda: claim(current))
        if claimed.status is not Status.HELD:
            if hold_id:
                await self.d.availability.release_hold(
                    derived_request_id(booking.id, "release:waitlist_requested"), hold_id, "waitlist_requested"
                )
            return claimed
        if not hold_id:
            return await self.persist(
                booking.id, lambda b, now: self._reject_taken(b, now, "waitlist_offer_not_active"), known=claimed
            )
        return claimed

    async def hold_slots(self, booking: Booking, ttl: timedelta) -> Booking:
        try:
            hold = await self.d.availability.hold_slots(
                request_id=derived_request_id(booking.id, "hold"),
                place_id=booking.place_id,
                ranges=booking.ranges,
                units=booking.units,
                ttl=ttl,
                booking_id=booking.id,
                holder_id=booking.client_id,
            )
        except SlotUnavailable:
            await self.persist(booking.id, self._reject_taken)
            raise
        except FailedPrecondition as refusal:  # outside opening hours, insufficient notice, ...
            why = refusal.reason.lower()
            await self.persist(booking.id, lambda b, now: self._reject_taken(b, now, why))
            raise
        except ReservaError:
            # Peer down or deadline: the hold may or may not exist. The booking ends now; the
            # recovery worker replays HoldSlots with the same request id and releases what it finds.
            await self._abandon(booking, "availability_unavailable")
            raise
        self._checkpoint("hold")

        def record(b: Booking, now: datetime) -> None:
            b.hold_id = hold.id
            b.set_saga(SagaState.AUTHORIZING, now, self.d.recovery_after)

        return await self.persist(booking.id, record, known=booking)

    @staticmethod
    def _reject_taken(b: Booking, now: datetime, why: str = "slot_unavailable") -> None:
        b.failure_reason = why
        if b.status is Status.HELD:
            b.reject("system", why, now)
        else:  # an approval that found the time taken: the request stays REQUESTED
            b.set_saga(SagaState.DONE, now)

    async def authorize_payment(
        self, booking: Booking, token: str, step: str, then: SagaState = SagaState.CONFIRMING
    ) -> Booking:
        """Authorize the booking's payment; `then` is the saga state it is recorded in (a series'
        occurrence stays 'authorizing' until every occurrence is authorized)."""
        try:
            payment = await self.d.payments.authorize(
                request_id=derived_request_id(booking.id, step),
                booking_id=booking.id,
                user_id=booking.client_id,
                amount=booking.price,
                token=token,
                kind="full" if booking.deposit_policy.prepaid else "deposit",
            )
        except BookingPaymentDeclined as declined:
            await self.release_hold(booking, "payment_failed")
            reason = declined.metadata.get("failure_reason", "card_declined")
            pid = declined.metadata.get("payment_id", "")
            await self.persist(booking.id, lambda b, now: self._payment_failed(b, now, reason, pid))
            raise
        except ReservaError:
            # Payments down or an unexpected refusal: nothing may stay half-booked. Release the
            # slots now and end the booking; any authorization that did happen is voided by the
            # recovery worker (saga left 'compensating').
            await self._abandon(booking, "payments_unavailable")
            raise
        self._checkpoint("authorize")

        def record(b: Booking, now: datetime) -> None:
            b.payment_id, b.payment_status = payment.id, payment.status
            b.set_saga(then, now, self.d.recovery_after)

        return await self.persist(booking.id, record, known=booking)

    @staticmethod
    def _payment_failed(b: Booking, now: datetime, reason: str, payment_id: str) -> None:
        b.payment_id = payment_id or b.payment_id
        b.fail_payment(reason, now)
        b.set_saga(SagaState.DONE, now)

    async def _abandon(self, booking: Booking, why: str) -> None:
        """An INSTANT booking ends EXPIRED with its slots released; an APPROVED one keeps its hold.
        Either way the saga stays 'compensating' so the recovery worker voids any authorization."""
        if booking.status is Status.HELD:
            try:
                await self.release_hold(booking, why)
            except ReservaError:
                log.warning("release failed; the recovery worker will retry", extra={"booking_id": booking.id})

        def end(b: Booking, now: datetime) -> None:
            b.failure_reason = why
            if b.status is Status.HELD:
                b.expire(now, why)
            b.set_saga(SagaState.COMPENSATING, now, self.d.recovery_after)

        await self.persist(booking.id, end)

    async def confirm_and_capture(self, booking: Booking) -> Booking:
        try:
            await self.d.availability.confirm_hold(derived_request_id(booking.id, "confirm"), booking.hold_id)
        except (FailedPrecondition, NotFound):
            # The hold lapsed (too slow a payment): give the money back, end the booking.
            await self.void_payments(booking, "hold_expired")
            await self.persist(
                booking.id, lambda b, now: (b.expire(now, "hold_expired"), b.set_saga(SagaState.DONE, now))
            )
            raise
        self._checkpoint("confirm_hold")
        status = booking.payment_status
        if booking.deposit_policy.prepaid:
            # The saga stays 'confirming' while the money moves: recovery resumes 'confirming' and
            # 'capturing' alike (the confirmation and the capture replayed under their request ids,
            # the refused capture's compensation included), so a step of its own for the capture
            # would be one more transaction per booking that changes nothing.
            try:
                payment = await self.d.payments.capture(derived_request_id(booking.id, "capture"), booking.payment_id)
            except BookingPaymentDeclined as declined:
                await self._capture_refused(booking, declined)
                raise
            status = payment.status
        self._checkpoint("capture")
        return await self.persist(booking.id, lambda b, now: b.confirm(now, status), known=booking)

    async def _capture_refused(self, booking: Booking, declined: BookingPaymentDeclined) -> None:
        """The processor refused the capture after the slots were confirmed (the issuer withdrew the
        authorization): nothing may stay half-booked. The slots go back, the authorization is voided
        and the booking ends PAYMENT_FAILED. Interrupted, the saga stays 'capturing' and recovery
        replays the capture (payments answers the same refusal) or finds the hold released."""
        await self.release_hold(booking, "payment_failed")
        await self.void_payments(booking, "capture_declined")
        reason = declined.metadata.get("failure_reason") or "capture_declined"
        await self.persist(booking.id, lambda b, now: self._payment_failed(b, now, reason, ""))

    # ----- a recurring series ---------------------------------------------------------------
    async def book_series(self, occurrences: list[Booking], token: str, allow_partial: bool) -> None:
        """HELD occurrences (saga 'holding') -> CONFIRMED, each one that cannot be booked ended with
        its reason. Every hold first (all the taken ones are known), then every authorization, then
        the captures: without `allow_partial` a refusal undoes the others before anything is
        captured (and a capture refused after others were made refunds them). An outage undoes what
        was done and raises; during the captures it leaves them to the recovery worker, which
        finishes them (each is authorized and its hold still stands).

        All or nothing survives a crash too: the occurrences stay 'authorizing' (which recovery
        undoes) until every one is authorized, then move to 'confirming' (which recovery finishes)
        in one transaction. While the flow runs, it keeps the recovery worker off the occurrences
        waiting for their turn; one the worker finished first is taken as captured."""
        lease = _SeriesLease(self, occurrences)
        ttl = timedelta(seconds=self.d.settings.hold_ttl_s)
        held = await self._series_step(
            occurrences, lambda b: self.hold_slots(b, ttl), allow_partial, FailedPrecondition, lease, to_the_end=True
        )
        then = SagaState.CONFIRMING if allow_partial else SagaState.AUTHORIZING
        authorized = await self._series_step(
            held,
            lambda b: self.authorize_payment(b, token, step="authorize", then=then),
            allow_partial,
            BookingPaymentDeclined,
            lease,
        )
        if authorized and not allow_partial:
            confirming = await self._confirm_together(authorized)
            if confirming is None:
                await self._undo_series(authorized)
                return
            authorized = confirming
        refusals = (FailedPrecondition, NotFound, BookingPaymentDeclined)
        await self._series_step(
            authorized, self._capture_occurrence, allow_partial, refusals, lease, undo_on_outage=False
        )

    async def _confirm_together(self, authorized: list[Booking]) -> list[Booking] | None:
        """Every authorized occurrence 'authorizing' -> 'confirming' in one transaction (from here on
        recovery finishes the series instead of undoing it), or None if one changed meanwhile (the
        recovery worker ended it): then none moves. Each row is written against the version this
        flow knows, without reading it, so the transaction's locks do not grow with the series."""

        async def attempt() -> list[Booking] | None:
            async with self.d.uow() as uow:
                now, moved = self.d.clock(), []
                for known in authorized:
                    if known.status is not Status.HELD or known.saga_state is not SagaState.AUTHORIZING:
                        return None
                    b = _copy(known)
                    b.set_saga(SagaState.CONFIRMING, now, self.d.recovery_after)
                    await uow.bookings.save(b, known.version)
                    moved.append(b)
                await uow.commit()
                return moved

        try:
            return await with_retries(attempt)
        except StaleEtag:
            return None

    async def _capture_occurrence(self, booking: Booking) -> Booking:
        """confirm_and_capture, for an occurrence the recovery worker may have finished first (its
        confirmation and capture replayed under the same request ids): CONFIRMED is done."""
        try:
            return await self.confirm_and_capture(booking)
        except IllegalStatusTransition:
            current = await self.reload(booking.id)
            if current.status is Status.CONFIRMED:
                return current
            raise

    async def _series_step(
        self, occurrences, step, allow_partial: bool, refusals, lease, *, to_the_end=False, undo_on_outage=True
    ) -> list[Booking]:
        """One saga step on each occurrence; the ones that passed it. A refusal has ended its own
        occurrence (the step's compensation); without `allow_partial` it ends the others too, at
        once or, `to_the_end`, once every occurrence has had the step."""
        passed: list[Booking] = []
        refused = False
        await lease.renew(force=True)
        for i, booking in enumerate(occurrences):
            try:
                await lease.renew()
                passed.append(await step(booking))
            except refusals:
                refused = True
                if not allow_partial and not to_the_end:
                    await self._undo_series([*passed, *occurrences[i + 1 :]])
                    return []
            except ReservaError:
                if undo_on_outage:
                    await self._undo_series([*passed, *occurrences[i + 1 :]])
                raise
        if refused and not allow_partial:
            await self._undo_series(passed)
            return []
        return passed

    async def _undo_series(self, occurrences: list[Booking]) -> None:
        for booking in occurrences:
            await self._drop_occurrence(booking)

    async def _drop_occurrence(self, booking: Booking) -> None:
        """An occurrence of a series that is not booked whole: its slots and its money go back (a
        confirmed one is cancelled with a full refund). What fails now, the recovery worker does."""
        if booking.status is Status.CONFIRMED:

            def cancel(b: Booking, now: datetime) -> None:
                b.cancel(SYSTEM_ACTOR, True, SERIES_NOT_BOOKED, now)
                b.failure_reason = SERIES_NOT_BOOKED
                b.set_saga(SagaState.REFUNDING, now, self.d.recovery_after)

            booking = await self.persist(booking.id, cancel, known=booking)
            try:
                await self.settle(booking)
            except ReservaError:
                log.warning("a series' refund is left to the recovery worker", extra={"booking_id": booking.id})
            return
        state = SagaState.DONE
        try:
            await self.release_hold(booking, SERIES_NOT_BOOKED)
            if booking.payment_id:
                await self.void_payments(booking, SERIES_NOT_BOOKED)
        except ReservaError:
            state = SagaState.COMPENSATING  # the recovery worker releases and voids

        def end(b: Booking, now: datetime) -> None:
            b.failure_reason = SERIES_NOT_BOOKED
            if b.status is Status.HELD:
                b.expire(now, SERIES_NOT_BOOKED)
            b.set_saga(state, now, self.d.recovery_after)

        await self.persist(booking.id, end, known=booking)

    # ----- compensations --------------------------------------------------------------------
    async def release_hold(self, booking: Booking, reason: str) -> None:
        if booking.hold_id:
            # One request id per reason: a retry of the same release is idempotent, and a later release
            # for another reason (recovery after an abandoned saga) is a new, harmless request.
            await self.d.availability.release_hold(
                derived_request_id(booking.id, f"release:{reason}"), booking.hold_id, reason
            )

    async def void_payments(self, booking: Booking, reason: str) -> None:
        """Void every authorization of the booking (found through payments, so a payment whose id we
        never recorded is voided too)."""
        payments = (await self.d.payments.payments_by_booking([booking.id])).get(booking.id, [])
        for p in payments:
            # An UNKNOWN authorization too: payments records the void and makes it once the outcome is known.
            if p.status in ("authorized", "pending", "unknown"):
                # As for releases: one request id per reason, so recovery's void is not a "reused key".
                await self._void(booking, f"void:{p.id}:{reason}", p.id, reason)

    async def _void(self, booking: Booking, step: str, payment_id: str, reason: str) -> None:
        try:
            await self.d.payments.void(derived_request_id(booking.id, step), payment_id, reason)
        except BookingPaymentDeclined as declined:
            # Refused for good (asking again replays the refusal): nothing is charged and the
            # authorization lapses at the processor on its own; the compensation goes on.
            log.warning(
                "the processor refused to void an authorization; it will lapse on its own",
                extra={
                    "booking_id": booking.id,
                    "payment_id": payment_id,
                    "reason": declined.metadata.get("failure_reason"),
                },
            )

    # ----- REQUEST places -------------------------------------------------------------------
    async def approve(self, booking: Booking, host_id: str) -> Booking:
        """REQUESTED (saga 'holding') -> APPROVED with a hold; overlapping requests rejected."""
        ttl = timedelta(seconds=self.d.settings.approval_payment_ttl_s)
        booking = await self.hold_for_approval(booking, ttl)

        async def attempt() -> Booking:
            async with self.d.uow() as uow:
                b = await uow.bookings.get(booking.id)
                if b.status is Status.APPROVED and b.hold_id == booking.hold_id:
                    return b  # the recovery worker finished this approval with this very hold
                if b.saga_state is not SagaState.HOLDING:
                    # This flow outlived its lease (HoldSlots was slow): the recovery worker took
                    # the approval over and released the hold. The request stands; approve again.
                    raise Unavailable(
                        "the approval took too long and was undone; approve again", reason="APPROVAL_INTERRUPTED"
                    )
                expected, now = b.version, self.d.clock()
                b.approve(host_id, booking.hold_id, now, ttl)
                await uow.bookings.save(b, expected)
                rejected = await uow.bookings.reject_overlapping_requests(
                    b.place_id, b.id, b.ranges, host_id, "another request was approved", now
                )
                uow.collect(b, *rejected)
                await uow.commit()
                return b

        try:
            return await with_retries(attempt)
        except ReservaError:
            await self.release_hold(booking, "approval_failed")
            raise

    async def hold_for_approval(self, booking: Booking, ttl: timedelta) -> Booking:
        try:
            hold = await self._approval_hold(booking, ttl)
        except FailedPrecondition:
            await self.persist(booking.id, self._reject_taken)
            raise
        booking.hold_id = hold.id
        return booking

    async def _approval_hold(self, booking: Booking, ttl: timedelta):
        """The approval's hold: made, or the one an interrupted attempt made. Each attempt's request
        id is derived from the booking, so a replay finds it. An attempt that was interrupted and
        recovered left its hold released: replaying its id would hand that dead hold back, so the
        next attempt's id is derived from it, and the chain is followed to the live hold (or a new
        one). The recovery worker follows the same chain (_find_hold)."""
        step = "hold"
        while True:
            hold = await self.d.availability.hold_slots(
                request_id=derived_request_id(booking.id, step),
                place_id=booking.place_id,
                ranges=booking.ranges,
                units=booking.units,
                ttl=ttl,
                booking_id=booking.id,
                holder_id=booking.client_id,
            )
            if hold.state in ("held", "confirmed"):
                return hold
            step = f"hold:{hold.id}"

    async def pay_approved(self, booking: Booking, token: str, request_id: str) -> Booking:
        """APPROVED (saga 'authorizing') -> CONFIRMED, or PAYMENT_FAILED with the hold released."""
        booking = await self.authorize_payment(booking, token, step=f"authorize:{request_id}")
        return await self.confirm_and_capture(booking)

    # ----- after a cancellation, no-show or completion --------------------------------------
    async def settle(self, booking: Booking) -> Booking:
        """Carry out the money and calendar side of a terminal status or a reschedule (saga
        'refunding'/'capturing')."""
        refund_id, refused, unpaid = "", "", None
        move_refused = await self._settle_move(booking) if booking.pending_move is not None else ""
        if booking.status is Status.CANCELLED:
            await self.release_hold(booking, "booking_cancelled")
            refund_id, refused, unpaid = await self._settle_cancellation_money(booking)
        elif booking.status in (Status.NO_SHOW, Status.COMPLETED) and booking.payment_status == "authorized":
            amount = booking.deposit if booking.status is Status.NO_SHOW else booking.price
            refused = await self._capture_owed(booking, "final_capture", amount)
            unpaid = amount if refused else None

        def done(b: Booking, now: datetime) -> None:
            b.pending_move = None
            if refund_id and b.cancellation is not None:
                b.cancellation = replace(b.cancellation, refund_id=refund_id)
            if move_refused and not refused:  # a reschedule's refund: the money stays captured
                b.failure_reason = move_refused
            if refused:  # a refused capture (its authorization voided) or refund (the money stays captured)
                b.failure_reason = refused
                if b.payment_status == "authorized":
                    b.payment_status = "failed"
            elif b.status in (Status.NO_SHOW, Status.COMPLETED) and b.payment_status == "authorized":
                b.payment_status = "captured"
            if unpaid is not None:
                b.fee_unpaid(unpaid, refused)
            b.set_saga(SagaState.DONE, now)

        return await self.persist(booking.id, done)

    async def _settle_move(self, booking: Booking) -> str:
        """A reschedule's debts once the booking has moved: release the old hold, refund the lower
        price. The reason if the processor refused the refund (payments told the client and the
        agents: payment.refund_failed; asking again would only replay the refusal)."""
        move = booking.pending_move
        try:
            await self.d.availability.release_hold(
                derived_request_id(booking.id, f"{move.step}:release"), move.old_hold_id, "rescheduled"
            )
        except NotFound:
            pass  # no such hold any more: nothing to release
        if move.refund_minor <= 0 or not booking.payment_id:
            return ""
        try:
            await self.d.payments.refund(
                derived_request_id(booking.id, f"{move.step}:refund"),
                booking.payment_id,
                Money(move.refund_minor, booking.price.currency),
                "rescheduled",
            )
        except BookingPaymentDeclined as declined:
            reason = declined.metadata.get("failure_reason") or "refund_declined"
            log.warning(
                "the processor refused a reschedule's refund; the money stays captured",
                extra={"booking_id": booking.id, "amount_minor": move.refund_minor, "reason": reason},
            )
            return reason
        return ""

    async def _settle_cancellation_money(self, booking: Booking) -> tuple[str, str, Money | None]:
        """(the refund's id, the reason the processor refused a capture or the refund, the fee it
        refused to capture), each empty or None when not so."""
        c = booking.cancellation
        if not booking.payment_id:
            await self.void_payments(booking, "booking_cancelled")
            return "", "", None
        if booking.payment_status == "captured":
            if c.refund_minor <= 0:
                return "", "", None
            try:
                refund_id, _ = await self.d.payments.refund(
                    derived_request_id(booking.id, "refund"),
                    booking.payment_id,
                    Money(c.refund_minor, booking.price.currency),
                    "booking_cancelled",
                )
            except BookingPaymentDeclined as declined:
                # Refused for good (payments told the client and the agents: payment.refund_failed);
                # asking again under the same request id would only replay the refusal. The
                # cancellation stands with the failed refund's id; the agents settle the money.
                reason = declined.metadata.get("failure_reason") or "refund_declined"
                return declined.metadata.get("refund_id", ""), reason, None
            except ReservaError as error:
                if error.reason != "AMOUNT_EXCEEDS_REFUNDABLE":
                    raise
                return await self._refund_the_rest(booking), "", None
            return refund_id, "", None
        if booking.payment_status == "authorized":
            kept = booking.charged_minor() - c.refund_minor
            if kept > 0:
                fee = Money(kept, booking.price.currency)
                refused = await self._capture_owed(booking, "cancel_capture", fee)
                return "", refused, fee if refused else None
            await self._void(booking, "cancel_void", booking.payment_id, "cancelled")
        return "", "", None

    async def _refund_the_rest(self, booking: Booking) -> str:
        """Part of the payment was refunded outside the booking (a host's or an agent's goodwill
        refund), so less is left than the cancellation returns: refund what is left, once (its
        request id names the amount; a retry after it went through finds nothing left)."""
        payments = await self.d.payments.payments_by_booking([booking.id])
        paid = next(p for p in payments.get(booking.id, []) if p.id == booking.payment_id)
        left = min(paid.captured_minor - paid.refunded_minor, booking.cancellation.refund_minor)
        if left <= 0:
            return ""
        refund_id, _ = await self.d.payments.refund(
            derived_request_id(booking.id, f"refund:rest:{left}"),
            booking.payment_id,
            Money(left, booking.price.currency),
            "booking_cancelled",
        )
        return refund_id

    async def _capture_owed(self, booking: Booking, step: str, amount: Money) -> str:
        """Capture what the booking owes (a no-show fee, a completed stay, a cancellation fee); the
        reason if the processor refused. Then the authorization is released rather than left
        standing, and the booking says its payment failed: collecting it is the agents' business."""
        try:
            await self.d.payments.capture(derived_request_id(booking.id, step), booking.payment_id, amount)
        except BookingPaymentDeclined as declined:
            reason = declined.metadata.get("failure_reason") or "capture_declined"
            log.warning(
                "the processor refused to capture what an ended booking owes; its authorization is voided"
                " (booking.fee_unpaid tells the client and the agents)",
                extra={"booking_id": booking.id, "step": step, "amount_minor": amount.amount_minor, "reason": reason},
            )
            await self.void_payments(booking, "capture_declined")
            return reason
        return ""

    # ----- recovery -------------------------------------------------------------------------
    async def recover(self, booking: Booking) -> Booking:
        """Bring a booking whose flow was interrupted to a defined state: resume when the client's
        money is already authorized, compensate otherwise."""
        state = booking.saga_state
        log.info("recovering saga", extra={"booking_id": booking.id, "saga_state": state.value})
        if state in (SagaState.CONFIRMING, SagaState.CAPTURING) and booking.status in (Status.HELD, Status.APPROVED):
            try:
                return await self.confirm_and_capture(booking)
            except (FailedPrecondition, NotFound, BookingPaymentDeclined):
                return await self.reload(booking.id)  # ended in a defined state by the step's compensation
        if state in (SagaState.REFUNDING, SagaState.CAPTURING):
            return await self.settle(booking)
        if booking.status is Status.APPROVED:
            # Only the payment attempt is undone; the approval's hold stays for the client.
            await self.void_payments(booking, "saga_recovery")
            return await self.persist(booking.id, lambda b, now: b.set_saga(SagaState.DONE, now))
        # HOLDING, AUTHORIZING, COMPENSATING: undo whatever may exist, then end in a defined state.
        if state in (SagaState.HOLDING, SagaState.COMPENSATING) and not booking.hold_id:
            booking.hold_id = await self._find_hold(booking)
        await self.release_hold(booking, "saga_recovery")
        await self.void_payments(booking, "saga_recovery")

        def end(b: Booking, now: datetime) -> None:
            if b.status is Status.HELD:
                b.expire(now, "saga_recovery")
            elif b.status is Status.REQUESTED:
                b.hold_id = ""  # an interrupted approval: the request stands, without a hold
            b.set_saga(SagaState.DONE, now)

        return await self.persist(booking.id, end)

    async def reload(self, booking_id: str) -> Booking:
        async with self.d.uow() as uow:
            return await uow.bookings.get(booking_id)

    async def _find_hold(self, booking: Booking) -> str:
        """Replaying HoldSlots with the step's request id returns the hold if it was made (or makes
        it, to be released right after). A conflict means nothing of ours is held."""
        ttl = (
            self.d.settings.hold_ttl_s
            if booking.mode is BookingMode.INSTANT
            else self.d.settings.approval_payment_ttl_s
        )
        try:
            if booking.mode is BookingMode.INSTANT:
                hold = await self.d.availability.hold_slots(
                    request_id=derived_request_id(booking.id, "hold"),
                    place_id=booking.place_id,
                    ranges=booking.ranges,
                    units=booking.units,
                    ttl=timedelta(seconds=ttl),
                    booking_id=booking.id,
                    holder_id=booking.client_id,
                )
            else:  # an approval may have been attempted (and recovered) before
                hold = await self._approval_hold(booking, timedelta(seconds=ttl))
        except (FailedPrecondition, NotFound):
            return ""
        except Unavailable:
            raise
        return hold.id
