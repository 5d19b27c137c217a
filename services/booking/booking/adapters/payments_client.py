"""The payments service as the booking domain sees it. Deadlines on every call; a decline becomes
BookingPaymentDeclined; everything else keeps the peer's reason."""

from __future__ import annotations

from dataclasses import dataclass

from booking.domain.errors import BookingPaymentDeclined, PeerUnavailable
from booking.domain.model import Money
from kit.errors import ErrorKind, ReservaError
from kit.grpc_client import PeerClient, make_channel
from kit.identity import SYSTEM
from reserva.payments.v1 import payments_pb2, payments_pb2_grpc
from reserva.type.v1 import types_pb2

SERVICE = "reserva.payments.v1.PaymentService"
IDEMPOTENT = [
    "AuthorizePayment",
    "CapturePayment",
    "VoidPayment",
    "RefundPayment",
    "GetPayment",
    "BatchGetPaymentsByBooking",
]
STATUS_NAMES = {
    1: "pending",
    2: "authorized",
    3: "captured",
    4: "partially_refunded",
    5: "refunded",
    6: "voided",
    7: "failed",
    8: "unknown",
}
KINDS = {"full": 1, "deposit": 2, "balance": 3}


@dataclass(frozen=True)
class PaymentRef:
    id: str
    status: str
    amount_minor: int = 0
    authorized_minor: int = 0
    captured_minor: int = 0
    refunded_minor: int = 0
    failure_reason: str = ""


def _money(m: Money) -> types_pb2.Money:
    return types_pb2.Money(amount_minor=m.amount_minor, currency_code=m.currency)


def payment_from_proto(p: payments_pb2.Payment) -> PaymentRef:
    return PaymentRef(
        p.id,
        STATUS_NAMES.get(p.status, "unknown"),
        p.amount.amount_minor,
        p.authorized_amount.amount_minor,
        p.captured_amount.amount_minor,
        p.refunded_amount.amount_minor,
        p.failure_reason,
    )


class PaymentsClient:
    def __init__(self, peer: PeerClient):
        self.peer = peer

    @classmethod
    def connect(cls, address: str, deadline_s: float) -> PaymentsClient:
        channel = make_channel(address, SERVICE, IDEMPOTENT)
        return cls(PeerClient("payments", channel, payments_pb2_grpc.PaymentServiceStub(channel), deadline_s))

    async def close(self) -> None:
        await self.peer.channel.close()

    async def _call(self, method: str, request):
        try:
            return await self.peer.call(method, request, caller=SYSTEM)
        except ReservaError as error:
            if error.kind is ErrorKind.INTERNAL:
                raise PeerUnavailable("the payments service failed; retry shortly", "PAYMENTS_FAILED") from None
            if error.reason == "PAYMENT_DECLINED":
                declined = BookingPaymentDeclined(error.metadata.get("failure_reason") or "card_declined")
                declined.metadata.update(error.metadata)
                raise declined from None
            raise

    async def _in_doubt_is_unavailable(self, method: str, request):
        """Authorize and capture are the saga's own calls, with request ids derived from the booking:
        "outcome unknown" (the processor did not answer) or "in progress" (our earlier attempt is
        still running at payments) is never the client's doing. The saga gives the booking up (or
        its recovery settles it), so the client is told "payments unavailable, retry with the same
        Idempotency-Key" -- not a conflict."""
        try:
            return await self._call(method, request)
        except ReservaError as error:
            if error.reason != "PAYMENT_OUTCOME_UNKNOWN" and error.kind is not ErrorKind.CONFLICT:
                raise
            raise PeerUnavailable(
                "the card processor's answer is not known yet; retry with the same Idempotency-Key to "
                "learn the booking's outcome (nothing is charged without a booking)",
                "PAYMENTS_UNAVAILABLE",
            ) from None

    async def authorize(
        self, *, request_id: str, booking_id: str, user_id: str, amount: Money, token: str, kind: str = "full"
    ) -> PaymentRef:
        request = payments_pb2.AuthorizePaymentRequest(
            request_id=request_id,
            booking_id=booking_id,
            user_id=user_id,
            amount=_money(amount),
            payment_method_token=token,
            kind=KINDS[kind],
        )
        return payment_from_proto(await self._in_doubt_is_unavailable("AuthorizePayment", request))

    async def capture(self, request_id: str, payment_id: str, amount: Money | None = None) -> PaymentRef:
        request = payments_pb2.CapturePaymentRequest(request_id=request_id, payment_id=payment_id)
        if amount is not None:
            request.amount.CopyFrom(_money(amount))
        return payment_from_proto(await self._in_doubt_is_unavailable("CapturePayment", request))

    async def void(self, request_id: str, payment_id: str, reason: str) -> PaymentRef:
        request = payments_pb2.VoidPaymentRequest(request_id=request_id, payment_id=payment_id, reason=reason)
        return payment_from_proto(await self._call("VoidPayment", request))

    async def refund(self, request_id: str, payment_id: str, amount: Money, reason: str) -> tuple[str, PaymentRef]:
        request = payments_pb2.RefundPaymentRequest(
            request_id=request_id, payment_id=payment_id, amount=_money(amount), reason=reason
        )
        reply = await self._call("RefundPayment", request)
        return reply.refund.id, payment_from_proto(reply.payment)

    async def payments_by_booking(self, booking_ids: list[str]) -> dict[str, list[PaymentRef]]:
        """One batched call for up to 100 bookings: booking id -> payments, newest first."""
        if not booking_ids:
            return {}
        request = payments_pb2.BatchGetPaymentsByBookingRequest(booking_ids=list(dict.fromkeys(booking_ids)))
        reply = await self._call("BatchGetPaymentsByBooking", request)
        return {r.booking_id: [payment_from_proto(p) for p in r.payments] for r in reply.results}
