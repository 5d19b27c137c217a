"""Payments: the caller's payments, one payment, its ledger, and refunds (hosts of the booking's
place and agents)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from gateway.entrypoints.cursors import decode_cursor, encode_cursor
from gateway.entrypoints.proto_json import to_json
from gateway.entrypoints.responses import LedgerPageOut, PaymentOut, PaymentPageOut, RefundResultOut
from gateway.entrypoints.schemas import RefundIn, Uuid
from gateway.entrypoints.security import Principal, agent_only, authenticated, gateway_of, host_or_agent, request_id
from kit.errors import PermissionDenied
from kit.identity import SYSTEM
from reserva.booking.v1 import booking_pb2 as bk
from reserva.payments.v1 import payments_pb2 as pay
from reserva.type.v1 import types_pb2

router = APIRouter(tags=["payments"])


async def _visible_payment(request: Request, principal: Principal, payment_id: str) -> tuple[pay.Payment, str]:
    """The payment and its booking's host, if the caller paid it, hosts its booking, or is an agent
    (else 403/404). Payments knows only the payer, so the gateway reads the payment itself and the
    booking service decides whether the caller may see the booking."""
    peers = gateway_of(request).peers
    payment = await peers.payments.call("GetPayment", pay.GetPaymentRequest(id=payment_id), caller=SYSTEM)
    if principal.has("agent") or payment.user_id == principal.user_id:
        return payment, ""
    booking = await peers.booking.call("GetBooking", bk.GetBookingRequest(id=payment.booking_id))
    return payment, booking.host_id


@router.get(
    "/v1/payments",
    response_model=PaymentPageOut,
    response_model_exclude_unset=True,
    summary="The caller's payments (agents: any user's)",
)
async def list_payments(
    request: Request,
    user_id: Uuid | None = None,
    page_size: int = Query(default=50, ge=1, le=200),
    page_token: str | None = Query(default=None, max_length=4096),
    principal: Principal = Depends(authenticated),
) -> dict[str, Any]:
    query = pay.ListPaymentsRequest(
        user_id=user_id or principal.user_id,
        page_size=page_size,
        page_token=decode_cursor("payments", page_token),
    )
    reply = await gateway_of(request).peers.payments.call("ListPayments", query)
    return {
        "payments": [to_json(p) for p in reply.payments],
        "next_page_token": encode_cursor("payments", reply.next_page_token),
    }


@router.get(
    "/v1/payments/{payment_id}", response_model=PaymentOut, response_model_exclude_unset=True, summary="One payment"
)
async def get_payment(
    payment_id: Uuid, request: Request, principal: Principal = Depends(authenticated)
) -> dict[str, Any]:
    payment, _ = await _visible_payment(request, principal, payment_id)
    return to_json(payment)


@router.get(
    "/v1/payments/{payment_id}/ledger",
    response_model=LedgerPageOut,
    response_model_exclude_unset=True,
    summary="Agents: ledger entries of a payment",
)
async def ledger(
    payment_id: Uuid,
    request: Request,
    page_size: int = Query(default=50, ge=1, le=200),
    page_token: str | None = Query(default=None, max_length=4096),
    _: Principal = Depends(agent_only),
) -> dict[str, Any]:
    query = pay.ListLedgerEntriesRequest(
        payment_id=payment_id, page_size=page_size, page_token=decode_cursor("ledger", page_token)
    )
    reply = await gateway_of(request).peers.payments.call("ListLedgerEntries", query)
    return {
        "entries": [to_json(e) for e in reply.entries],
        "next_page_token": encode_cursor("ledger", reply.next_page_token),
    }


@router.post(
    "/v1/payments/{payment_id}:refund",
    response_model=RefundResultOut,
    response_model_exclude_unset=True,
    summary="Host of the booking's place or agent: refund",
)
async def refund_payment(
    payment_id: Uuid,
    request: Request,
    body: RefundIn | None = None,
    principal: Principal = Depends(host_or_agent),
    key: str = Depends(request_id),
) -> dict[str, Any]:
    payment, host_id = await _visible_payment(request, principal, payment_id)
    if not principal.has("agent") and (host_id != principal.user_id or payment.user_id == principal.user_id):
        # A payer never refunds their own payment, even one who is also a host.
        raise PermissionDenied("only the host of the booking's place or an agent may refund a payment")
    refund = pay.RefundPaymentRequest(request_id=key, payment_id=payment_id, reason=body.reason if body else "")
    if body and body.amount:
        refund.amount.CopyFrom(
            types_pb2.Money(amount_minor=body.amount.amount_minor, currency_code=body.amount.currency_code)
        )
    # As the platform for a host (payments knows payers, not hosts: the gateway decided above).
    caller = None if principal.has("agent") else SYSTEM
    reply = await gateway_of(request).peers.payments.call("RefundPayment", refund, caller=caller)
    return {"refund": to_json(reply.refund), "payment": to_json(reply.payment)}
