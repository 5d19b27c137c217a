"""Helpers of the payments integration tests (a unique module name: test directories share sys.path)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc

from kit.identity import SYSTEM
from reserva.payments.v1 import payments_pb2 as pb
from reserva.payments.v1 import payments_pb2_grpc
from reserva.type.v1 import types_pb2

# The provider timeout of the patient server (conftest.patient_payments_server).
PATIENT_PROVIDER_TIMEOUT_S = 20.0


class MovableClock:
    """Real time plus an offset the tests advance (instead of sleeping)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta


class Client:
    """The stub with SYSTEM caller metadata on every call."""

    def __init__(self, channel, metadata=None):
        self._stub = payments_pb2_grpc.PaymentServiceStub(channel)
        self._metadata = metadata if metadata is not None else SYSTEM.to_metadata()

    def __getattr__(self, name):
        method = getattr(self._stub, name)

        async def call(request, **kwargs):
            kwargs.setdefault("metadata", self._metadata)
            return await method(request, **kwargs)

        return call


def settings(settings_for, **overrides):
    from payments.config import PaymentsSettings

    values = dict(
        provider_timeout_s=2.0,
        sandbox_slow_delay_s=0.1,
        sandbox_timeout_delay_s=0.2,
        sandbox_webhooks_enabled=False,
        reconcile_interval_s=0,
        idempotency_sweep_interval_s=0,
        webhook_secret="whsec_test",
    )
    values.update(overrides)
    return settings_for("payments", PaymentsSettings, **values)


def money(amount_minor: int, currency: str = "EUR") -> types_pb2.Money:
    return types_pb2.Money(amount_minor=amount_minor, currency_code=currency)


def authorize_request(amount=10_000, currency="EUR", token="tok_success", kind=pb.PAYMENT_KIND_FULL, **fields):
    values = dict(
        request_id=str(uuid.uuid4()),
        booking_id=str(uuid.uuid4()),
        user_id=str(uuid.uuid4()),
        amount=amount if isinstance(amount, types_pb2.Money) else money(amount, currency),
        payment_method_token=token,
        kind=kind,
    )
    values.update(fields)
    return pb.AuthorizePaymentRequest(**values)


def reason_of(error: grpc.aio.AioRpcError) -> str:
    from kit.grpc_client import error_from_rpc

    return error_from_rpc(error).reason
