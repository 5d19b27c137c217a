"""A sandbox card processor that behaves like a real one: it keeps its own record of charges (table
payments.sandbox_charges, as a processor keeps its own books), honours idempotency keys, answers
according to the test token, and sends HMAC-signed webhooks for every change.

Test tokens:
  tok_success                     authorizes
  tok_decline_insufficient_funds  declines, failure code "insufficient_funds"
  tok_decline_card                declines, failure code "card_declined"
  tok_slow                        authorizes after `slow_delay_s`
  tok_timeout                     authorizes (the charge happens and is recorded) but the answer is
                                  lost: raises ProviderTimeout after `timeout_delay_s`
  tok_lost                        the request never reaches the processor: no record, ProviderTimeout
Any other token declines with "invalid_payment_method".

A token may carry behaviours for the charge's later captures, voids and refunds, joined with "+" (as
a real processor's test cards trigger later failures), e.g. "tok_success+refund_timeout",
"tok_timeout+void_lost":
  capture_timeout, void_timeout,  the operation happens (recorded, webhook sent) but the answer of
  refund_timeout                  the call that did it is lost: ProviderTimeout after `timeout_delay_s`
  capture_lost, void_lost,        the first request of each operation (per idempotency key) never
  refund_lost                     reaches the processor: no record, ProviderTimeout; a retry does
  capture_declined                every capture of the charge is refused ("capture_declined"), as when
                                  the issuer withdrew the authorization
  void_declined                   every void of the charge is refused ("void_declined"), as when the
                                  processor no longer lets the authorization be released early
  refund_declined                 every refund of the charge is refused ("refund_declined"), as when
                                  the card's account was closed
An unknown behaviour declines the authorization with "invalid_payment_method"."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from kit.context import current_operation
from kit.db import SqlAlchemyUnitOfWork
from kit.lock_probe import LockProbe
from kit.sql import Row, param_cast, select_list
from payments.adapters import orm
from payments.domain.errors import InvalidWebhookSignature
from payments.domain.model import ChargeRecord, RefundRecord
from payments.domain.money import Money
from payments.service_layer.card_processor import Authorization, ProviderDeclined, ProviderEvent, ProviderTimeout

log = logging.getLogger("payments.sandbox")

TOKENS = {
    "tok_success": None,
    "tok_decline_insufficient_funds": "insufficient_funds",
    "tok_decline_card": "card_declined",
    "tok_slow": None,
    "tok_timeout": None,
    "tok_lost": None,
}
BEHAVIOURS = {f"{op}_{fault}" for op in ("capture", "void", "refund") for fault in ("timeout", "lost", "declined")}
AUTHORIZATION_VALIDITY = timedelta(days=7)
C = orm.sandbox_charges

Deliver = Callable[[bytes, str], Awaitable[None]]


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """Stripe-style signature header: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


class SandboxWebhooks:
    """Verifies and parses the sandbox's webhooks."""

    def __init__(self, secret: str, tolerance: timedelta = timedelta(minutes=5)):
        self.secret, self.tolerance = secret, tolerance

    def verify_and_parse(self, body: bytes, signature: str, now: datetime) -> ProviderEvent:
        try:
            parts = dict(item.split("=", 1) for item in signature.split(","))
            timestamp = int(parts["t"])
            given = parts["v1"]
        except (ValueError, KeyError):
            raise InvalidWebhookSignature("webhook signature header is malformed (expected t=...,v1=...)") from None
        expected = sign(self.secret, body, timestamp).split("v1=", 1)[1]
        if not hmac.compare_digest(expected, given):
            raise InvalidWebhookSignature("webhook signature does not match the body")
        if abs(now.timestamp() - timestamp) > self.tolerance.total_seconds():
            raise InvalidWebhookSignature("webhook signature timestamp is outside the tolerance (replayed?)")
        try:
            event = json.loads(body)
            return ProviderEvent(event["id"], event["type"], event["data"]["object"]["idempotency_key"])
        except (ValueError, KeyError, TypeError):
            raise InvalidWebhookSignature("webhook body is not a valid event") from None


class _Lost(Exception):
    """The simulated network lost the request before it reached the processor."""


def refund_reference(idempotency_key: str) -> str:
    return f"re_{hashlib.sha256(idempotency_key.encode()).hexdigest()[:24]}"


# The processor's books in plain SQL (kit.sql): its authorize and capture are on every booking's path.
_JSON = {c.name for c in C.c if isinstance(c.type, JSONB)}
_SELECT = select_list(C)
_CHARGE_BY_KEY = f"SELECT {_SELECT} FROM payments.sandbox_charges WHERE idempotency_key = $1"
_LOCK_CHARGE = f"SELECT {_SELECT} FROM payments.sandbox_charges WHERE reference = $1 FOR UPDATE"


def _param(name: str, value):
    return json.dumps(value) if name in _JSON else value


@functools.lru_cache(maxsize=16)
def _insert_charge(names: tuple[str, ...]) -> str:
    params = ", ".join(f"${i + 1}{param_cast(C.c[name])}" for i, name in enumerate(names))
    return (
        f"INSERT INTO payments.sandbox_charges ({', '.join(names)}) VALUES ({params}) "
        f"ON CONFLICT DO NOTHING RETURNING {_SELECT}"
    )


@functools.lru_cache(maxsize=16)
def _update_charge(names: tuple[str, ...]) -> str:
    sets = ", ".join(f"{name} = ${i + 2}{param_cast(C.c[name])}" for i, name in enumerate(names))
    return f"UPDATE payments.sandbox_charges SET {sets} WHERE reference = $1 RETURNING {_SELECT}"


def _record(row) -> ChargeRecord:
    return ChargeRecord(
        reference=row.reference,
        status=row.status,
        amount_minor=row.amount_minor,
        currency=row.currency,
        captured_minor=row.captured_minor,
        refunded_minor=row.refunded_minor,
        failure_code=row.failure_code,
        authorization_expire_time=row.authorization_expire_time,
    )


class SandboxCardProcessor:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        probe: LockProbe,
        clock: Callable[[], datetime],
        *,
        webhook_secret: str,
        slow_delay_s: float = 0.2,
        timeout_delay_s: float = 1.0,
        webhook_delay_s: float = 0.0,
        webhooks_enabled: bool = True,
    ):
        self.session_factory, self.probe, self.clock = session_factory, probe, clock
        self.webhook_secret = webhook_secret
        self.slow_delay_s, self.timeout_delay_s = slow_delay_s, timeout_delay_s
        self.webhook_delay_s, self.webhooks_enabled = webhook_delay_s, webhooks_enabled
        self._deliver: Deliver | None = None
        self._wired = asyncio.Event()
        self._outgoing: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()
        # Operation keys whose first request was lost (behaviours void_lost, refund_lost).
        self._lost_keys: set[str] = set()

    @property
    def deliver(self) -> Deliver | None:
        """Where webhooks go; None holds them back until set."""
        return self._deliver

    @deliver.setter
    def deliver(self, target: Deliver | None) -> None:
        self._deliver = target
        (self._wired.set if target else self._wired.clear)()

    # ---- the processor's API -----------------------------------------------------------------

    async def authorize(self, *, idempotency_key: str, amount: Money, token: str) -> Authorization:
        token, *behaviours = token.split("+")
        if token == "tok_lost":
            await asyncio.sleep(self.timeout_delay_s)
            raise ProviderTimeout("sandbox: request lost before reaching the processor")
        failure = TOKENS.get(token, "invalid_payment_method")
        if not BEHAVIOURS.issuperset(behaviours):
            failure = "invalid_payment_method"
        now = self.clock()
        values = {
            "reference": f"ch_{uuid.uuid4().hex[:24]}",
            "idempotency_key": idempotency_key,
            "status": "failed" if failure else "authorized",
            "amount_minor": amount.amount_minor,
            "currency": amount.currency,
            "captured_minor": 0,
            "refunded_minor": 0,
            "failure_code": failure or "",
            "operation_keys": [],
            "authorization_expire_time": None if failure else now + AUTHORIZATION_VALIDITY,
            "test_behaviours": sorted(set(behaviours)),
            "create_time": now,
            "update_time": now,
        }
        record = await self._tx(self._insert_new, values, lone=True)
        if record is None:  # the same key again: the charge as its first request made it
            record = await self._tx(self._charge_by_key, values)
        if token == "tok_timeout":
            await asyncio.sleep(self.timeout_delay_s)
            raise ProviderTimeout("sandbox: the processor did not answer in time")
        if token == "tok_slow":
            await asyncio.sleep(self.slow_delay_s)
        if record.status == "failed":
            raise ProviderDeclined(record.failure_code, record.reference)
        return Authorization(record.reference, record.authorization_expire_time)

    async def _insert_new(self, uow: SqlAlchemyUnitOfWork, values: dict) -> tuple[ChargeRecord | None, str | None]:
        """The new charge (one statement), or None if its key was used before."""
        names = tuple(values)
        row = await (await uow.driver()).fetchrow(_insert_charge(names), *[_param(n, values[n]) for n in names])
        if row is None:
            return None, None
        return _record(Row(row)), "charge.failed" if row["status"] == "failed" else "charge.authorized"

    async def _charge_by_key(self, uow: SqlAlchemyUnitOfWork, values: dict) -> tuple[ChargeRecord, None]:
        row = await (await uow.driver()).fetchrow(_CHARGE_BY_KEY, values["idempotency_key"])
        return _record(Row(row)), None

    async def capture(self, *, reference: str, amount: Money, idempotency_key: str) -> None:
        def change(row):
            if row.status != "authorized":
                raise ProviderDeclined("charge_not_capturable", reference)
            if amount.amount_minor > row.amount_minor or amount.currency != row.currency:
                raise ProviderDeclined("amount_too_large", reference)
            return {"status": "captured", "captured_minor": amount.amount_minor}, "charge.captured", None

        await self._operate("capture", reference, idempotency_key, change)

    async def void(self, *, reference: str, idempotency_key: str) -> None:
        def change(row):
            if row.status != "authorized":
                raise ProviderDeclined("charge_not_voidable", reference)
            return {"status": "voided"}, "charge.voided", None

        await self._operate("void", reference, idempotency_key, change)

    async def refund(self, *, reference: str, amount: Money, idempotency_key: str) -> str:
        answer = refund_reference(idempotency_key)

        def change(row):
            refunded = row.refunded_minor + amount.amount_minor
            if row.status not in ("captured", "refunded") or refunded > row.captured_minor:
                raise ProviderDeclined("amount_exceeds_refundable", reference)
            status = "refunded" if refunded == row.captured_minor else "captured"
            return {"status": status, "refunded_minor": refunded}, "charge.refunded", answer

        result = await self._operate("refund", reference, idempotency_key, change)
        return result or answer

    async def retrieve_refund(self, *, reference: str, idempotency_key: str) -> RefundRecord | None:
        async def read(uow: SqlAlchemyUnitOfWork, key: str):
            keys = (await uow.session.execute(select(C.c.operation_keys).where(C.c.reference == reference))).scalar()
            found = keys is not None and key in keys
            return (RefundRecord(refund_reference(key), "succeeded") if found else None), None

        return await self._tx(read, idempotency_key)

    async def _operate(self, operation: str, reference: str, key: str, change):
        """A capture, void or refund with the charge's test behaviours: its request lost, its answer
        lost, or every such operation refused."""
        answer_lost = False

        def with_behaviours(row):
            nonlocal answer_lost
            behaviours = row.test_behaviours or []
            if f"{operation}_lost" in behaviours and key not in self._lost_keys:
                self._lost_keys.add(key)
                raise _Lost
            answer_lost = f"{operation}_timeout" in behaviours
            if f"{operation}_declined" in behaviours:
                raise ProviderDeclined(f"{operation}_declined", reference)
            return change(row)

        try:
            result = await self._tx(self._change, reference, key, with_behaviours)
        except _Lost:
            await asyncio.sleep(self.timeout_delay_s)
            raise ProviderTimeout(f"sandbox: {operation} request lost before reaching the processor") from None
        if answer_lost:
            await asyncio.sleep(self.timeout_delay_s)
            raise ProviderTimeout(f"sandbox: the processor did not answer the {operation} in time")
        return result

    async def retrieve(self, *, idempotency_key: str) -> ChargeRecord | None:
        async def read(uow: SqlAlchemyUnitOfWork, key: str):
            row = (await uow.session.execute(select(C).where(C.c.idempotency_key == key))).one_or_none()
            return (_record(row) if row else None), None

        return await self._tx(read, idempotency_key)

    # ---- storage and webhooks ------------------------------------------------------------------

    async def _change(self, uow: SqlAlchemyUnitOfWork, reference: str, key: str, change):
        db = await uow.driver()
        found = await db.fetchrow(_LOCK_CHARGE, reference)
        if found is None:
            raise ProviderDeclined("no_such_charge", reference)
        row = Row(found)
        if key in row.operation_keys:
            return None, None  # the processor's own idempotency: a retried call changes nothing
        values, event_type, answer = change(row)
        values.update(operation_keys=[*row.operation_keys, key], update_time=self.clock())
        names = tuple(sorted(values))
        updated = await db.fetchrow(_update_charge(names), reference, *[_param(n, values[n]) for n in names])
        return answer, (event_type, _record(Row(updated)), row.idempotency_key)

    async def _tx(self, work, *args, lone: bool = False):
        """`work` in one transaction; `lone`: it is one statement, sent as a transaction of its own."""
        token = current_operation.set("sandbox_processor")
        try:
            async with SqlAlchemyUnitOfWork(self.session_factory, self.probe) as uow:
                if lone:
                    uow.lone_statement()
                result, event = await work(uow, *args)
                await uow.commit()
        finally:
            current_operation.reset(token)
        if event is not None:
            if isinstance(event, str):
                self._emit(event, result, args[0]["idempotency_key"])
            else:
                event_type, record, charge_key = event
                self._emit(event_type, record, charge_key)
        return result

    def _emit(self, event_type: str, record: ChargeRecord, charge_key: str) -> None:
        if not self.webhooks_enabled:
            return
        now = self.clock()
        body = json.dumps(
            {
                "id": f"evt_{uuid.uuid4().hex}",
                "type": event_type,
                "created": int(now.timestamp()),
                "data": {"object": {"reference": record.reference, "idempotency_key": charge_key}},
            }
        ).encode()
        self._outgoing.put_nowait((body, asyncio.get_running_loop().time() + self.webhook_delay_s))

    async def run_webhook_delivery(self, stop: asyncio.Event) -> None:
        """Worker: deliver queued webhooks (signed at send time), retrying failures a few times."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            try:
                body, due = await asyncio.wait_for(self._outgoing.get(), timeout=0.2)
            except TimeoutError:
                continue
            await asyncio.sleep(max(0.0, due - loop.time()))
            await self._wired.wait()  # until an endpoint is wired (stop cancels this worker)
            for attempt in range(5):
                if stop.is_set():
                    break
                try:
                    await self.deliver(body, sign(self.webhook_secret, body, int(self.clock().timestamp())))
                    break
                except Exception as error:
                    log.warning("webhook delivery failed", extra={"error": repr(error), "attempt": attempt})
                    await asyncio.sleep(0.05 * 2**attempt)
