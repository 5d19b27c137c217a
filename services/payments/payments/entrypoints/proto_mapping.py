"""Protos <-> domain objects and commands; page tokens. No business rules here."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

from kit import page_tokens, prototime
from kit.errors import InvalidArgument
from payments.domain.model import LedgerEntry, LedgerKind, Payment, PaymentKind, PaymentStatus, Refund, RefundStatus
from payments.domain.money import Money
from payments.service_layer import reports
from reserva.payments.v1 import payments_pb2 as pb
from reserva.type.v1 import types_pb2

KIND_FROM_PROTO = {
    pb.PAYMENT_KIND_FULL: PaymentKind.FULL,
    pb.PAYMENT_KIND_DEPOSIT: PaymentKind.DEPOSIT,
    pb.PAYMENT_KIND_BALANCE: PaymentKind.BALANCE,
}
KIND_TO_PROTO = {v: k for k, v in KIND_FROM_PROTO.items()}
STATUS_TO_PROTO = {s: pb.Payment.Status.Value(s.name) for s in PaymentStatus}
LEDGER_KIND_TO_PROTO = {k: pb.LedgerEntry.Kind.Value(k.name) for k in LedgerKind}
REFUND_STATUS_TO_PROTO = {s: pb.Refund.Status.Value(s.name) for s in RefundStatus}
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 50, 200


def kind_from_proto(value: int) -> PaymentKind:
    try:
        return KIND_FROM_PROTO[value]
    except KeyError:
        raise InvalidArgument("kind is required: FULL, DEPOSIT or BALANCE", reason="INVALID_ARGUMENT") from None


def money_from_proto(message, parent, field: str, required: bool) -> Money | None:
    if not parent.HasField(field):
        if required:
            raise InvalidArgument(f"{field} is required", reason="INVALID_AMOUNT")
        return None
    return Money.of(message.amount_minor, message.currency_code, field=field)


def money_proto(amount_minor: int, currency: str) -> types_pb2.Money:
    return types_pb2.Money(amount_minor=amount_minor, currency_code=currency)


ts = prototime.optional_timestamp


def payment_to_proto(p: Payment) -> pb.Payment:
    c = p.currency
    return pb.Payment(
        id=p.id, booking_id=p.booking_id, user_id=p.user_id, kind=KIND_TO_PROTO[p.kind],
        amount=money_proto(p.amount.amount_minor, c), authorized_amount=money_proto(p.authorized_amount, c),
        captured_amount=money_proto(p.captured_amount, c), refunded_amount=money_proto(p.refunded_amount, c),
        status=STATUS_TO_PROTO[p.status], failure_reason=p.failure_reason,
        provider_reference=p.provider_reference,
        authorization_expire_time=ts(p.authorization_expire_time) if p.status is PaymentStatus.AUTHORIZED else None,
        create_time=ts(p.create_time), update_time=ts(p.update_time),
    )  # fmt: skip


def refund_to_proto(r: Refund) -> pb.Refund:
    return pb.Refund(
        id=r.id, payment_id=r.payment_id, amount=money_proto(r.amount.amount_minor, r.amount.currency),
        reason=r.reason, status=REFUND_STATUS_TO_PROTO[r.status], provider_reference=r.provider_reference,
        create_time=ts(r.create_time),
    )  # fmt: skip


def ledger_entry_to_proto(e: LedgerEntry) -> pb.LedgerEntry:
    return pb.LedgerEntry(
        id=e.id, payment_id=e.payment_id, kind=LEDGER_KIND_TO_PROTO[e.kind],
        amount=money_proto(e.amount.amount_minor, e.amount.currency), refund_id=e.refund_id or "",
        create_time=ts(e.create_time),
    )  # fmt: skip


def currency_revenue_proto(r: reports.CurrencyRevenue) -> pb.CurrencyRevenue:
    return pb.CurrencyRevenue(
        currency_code=r.currency, captured=money_proto(r.captured, r.currency),
        refunded=money_proto(r.refunded, r.currency), net=money_proto(r.net, r.currency),
        payment_count=r.payment_count,
    )  # fmt: skip


# ---- pagination ----------------------------------------------------------------------------------


def page_size(value: int) -> int:
    if value == 0:
        return DEFAULT_PAGE_SIZE
    if not 1 <= value <= MAX_PAGE_SIZE:
        raise InvalidArgument(f"page_size must be 1 to {MAX_PAGE_SIZE} (0 for the default)", reason="INVALID_PAGE_SIZE")
    return value


def encode_token(scope: str, position: list) -> str:
    raw = json.dumps({"s": scope, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, scope: str, *kinds: Callable[[object], object]) -> tuple | None:
    """The position in a token of this scope, each value checked and converted to its kind
    (kit.page_tokens: tokens are not signed, a caller may send one back edited); None without one."""
    if not token:
        return None
    data = page_tokens.decode(token)
    if not isinstance(data, dict) or data.get("s") != scope or "p" not in data:
        raise InvalidArgument("page_token is invalid or belongs to other filters", reason="INVALID_PAGE_TOKEN")
    return page_tokens.position(data["p"], *kinds)
