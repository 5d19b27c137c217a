"""Payments and refunds as plain JSON-able dicts: what an idempotency key stores as its response."""

from __future__ import annotations

from datetime import datetime

from payments.domain.model import (
    Payment,
    PaymentKind,
    PaymentStatus,
    PendingOperation,
    Refund,
    RefundStatus,
)
from payments.domain.money import Money


def _t(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def payment_snapshot(p: Payment) -> dict:
    return {
        "id": p.id, "booking_id": p.booking_id, "user_id": p.user_id, "kind": p.kind.value,
        "amount_minor": p.amount.amount_minor, "currency": p.currency, "request_id": p.request_id,
        "create_time": _t(p.create_time), "update_time": _t(p.update_time), "status": p.status.value,
        "authorized_amount": p.authorized_amount, "captured_amount": p.captured_amount,
        "refunded_amount": p.refunded_amount, "refund_pending_amount": p.refund_pending_amount,
        "pending_operation": p.pending_operation.value if p.pending_operation else None,
        "pending_amount": p.pending_amount, "failure_reason": p.failure_reason,
        "provider_reference": p.provider_reference,
        "authorization_expire_time": _t(p.authorization_expire_time),
        "ledger_seq": p.ledger_seq, "version": p.version,
        "void_requested": p.void_requested, "void_reason": p.void_reason,
    }  # fmt: skip


def payment_from_snapshot(d: dict) -> Payment:
    return Payment(
        id=d["id"], booking_id=d["booking_id"], user_id=d["user_id"], kind=PaymentKind(d["kind"]),
        amount=Money(d["amount_minor"], d["currency"]), request_id=d["request_id"],
        create_time=_dt(d["create_time"]), update_time=_dt(d["update_time"]), status=PaymentStatus(d["status"]),
        authorized_amount=d["authorized_amount"], captured_amount=d["captured_amount"],
        refunded_amount=d["refunded_amount"], refund_pending_amount=d["refund_pending_amount"],
        pending_operation=PendingOperation(d["pending_operation"]) if d["pending_operation"] else None,
        pending_amount=d["pending_amount"], failure_reason=d["failure_reason"],
        provider_reference=d["provider_reference"], authorization_expire_time=_dt(d["authorization_expire_time"]),
        ledger_seq=d["ledger_seq"], version=d["version"],
        void_requested=d.get("void_requested", False), void_reason=d.get("void_reason", ""),
    )  # fmt: skip


def refund_snapshot(r: Refund) -> dict:
    return {
        "id": r.id, "payment_id": r.payment_id, "amount_minor": r.amount.amount_minor,
        "currency": r.amount.currency, "reason": r.reason, "status": r.status.value,
        "create_time": _t(r.create_time), "provider_reference": r.provider_reference,
    }  # fmt: skip


def refund_from_snapshot(d: dict) -> Refund:
    return Refund(
        id=d["id"], payment_id=d["payment_id"], amount=Money(d["amount_minor"], d["currency"]),
        reason=d["reason"], status=RefundStatus(d["status"]), create_time=_dt(d["create_time"]),
        provider_reference=d["provider_reference"],
    )  # fmt: skip
