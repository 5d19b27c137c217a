"""gRPC clients for calls between services: one channel per peer, reused; a deadline on every call
(the smaller of the default and what is left of the incoming call); retries via the gRPC service
config only for idempotent methods and only on UNAVAILABLE; a circuit breaker per peer that fails
closed; RpcError turned back into the domain error the peer raised."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from contextlib import nullcontext

import grpc
from google.rpc import error_details_pb2, status_pb2
from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import SpanKind

from kit.breaker import CircuitBreaker
from kit.context import current_caller, remaining_time
from kit.error_table import error_from_status
from kit.errors import DeadlineExceeded, ReservaError, Unavailable
from kit.interceptors import STATUS_DETAILS_KEY
from kit.telemetry import parent_unsampled

_tracer = trace.get_tracer("reserva.kit.grpc_client")
_meter = metrics.get_meter("reserva.kit.grpc_client")
_latency = _meter.create_histogram(
    "reserva.rpc.client.duration", unit="ms", description="calls to peers as the caller sees them, by outcome"
)
_errors = _meter.create_counter("reserva.rpc.client.errors", unit="{error}", description="failed calls to peers")
_BREAKER_FAILURES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def service_config(service: str, idempotent_methods: Iterable[str]) -> str:
    methods = [{"service": service, "method": m} for m in idempotent_methods]
    config = {"methodConfig": []}
    if methods:
        config["methodConfig"].append(
            {
                "name": methods,
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "0.5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        )
    return json.dumps(config)


def make_channel(target: str, service: str, idempotent_methods: Iterable[str] = ()) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        target,
        options=[
            ("grpc.enable_retries", 1),
            ("grpc.service_config", service_config(service, idempotent_methods)),
            ("grpc.keepalive_time_ms", 30_000),
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
        ],
    )


def error_from_rpc(error: grpc.aio.AioRpcError) -> ReservaError:
    reason, metadata, details = None, {}, []
    for key, value in error.trailing_metadata() or ():
        if key == STATUS_DETAILS_KEY:
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    reason, metadata = info.reason, dict(info.metadata)
                else:
                    details.append(detail)
    code = error.code()
    if code is grpc.StatusCode.UNAVAILABLE and reason is None:
        return Unavailable(f"peer unavailable: {error.details()}", reason="PEER_UNAVAILABLE")
    if code is grpc.StatusCode.DEADLINE_EXCEEDED and reason is None:
        return DeadlineExceeded("the peer did not answer before the deadline")
    domain_error = error_from_status(code, error.details() or "", reason, metadata)
    domain_error.details["proto_details"] = details
    return domain_error


class PeerClient:
    """Wraps one peer's stub. `await client.call("HoldSlots", request)`."""

    def __init__(
        self,
        peer_name: str,
        channel: grpc.aio.Channel,
        stub,
        default_deadline_s: float = 5.0,
        breaker: CircuitBreaker | None = None,
    ):
        self.peer_name, self.channel, self.stub = peer_name, channel, stub
        self.default_deadline_s = default_deadline_s
        self.breaker = breaker or CircuitBreaker()

    def _timeout(self, timeout: float | None) -> float:
        budget = timeout or self.default_deadline_s
        left = remaining_time()
        if left is not None:
            budget = min(budget, left - 0.01)
        if budget <= 0:
            raise DeadlineExceeded(f"no time left to call {self.peer_name}")
        return budget

    async def call(self, method: str, request, timeout: float | None = None, caller=None):
        if not self.breaker.allow():
            raise Unavailable(
                f"{self.peer_name} is unavailable (circuit open); retry later",
                reason=f"{self.peer_name.upper()}_UNAVAILABLE",
            )
        metadata = list((caller or current_caller.get()).to_metadata())
        started, outcome = time.perf_counter(), "ERROR"  # e.g. cancelled: neither answered nor refused
        # The span's status says a call failed; no traceback is formatted for a peer's refusal.
        name = f"{self.peer_name}/{method}"
        span = (
            nullcontext()  # a trace nobody samples: its context is passed on as it is
            if parent_unsampled()
            else _tracer.start_as_current_span(name, kind=SpanKind.CLIENT, record_exception=False)
        )
        with span:
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            metadata.extend(carrier.items())
            try:
                response = await getattr(self.stub, method)(request, timeout=self._timeout(timeout), metadata=metadata)
                outcome = "OK"
            except grpc.aio.AioRpcError as error:
                domain_error = error_from_rpc(error)
                # Only the peer's own failure to answer counts against it; an error it answered
                # (even UNAVAILABLE because one of *its* peers is down) shows it is alive.
                answered = any(k == STATUS_DETAILS_KEY for k, _ in (error.trailing_metadata() or ()))
                if error.code() in _BREAKER_FAILURES and not answered:
                    self.breaker.record_failure()
                else:
                    self.breaker.record_success()
                if domain_error.reason == "PEER_UNAVAILABLE":
                    # The peer itself could not be reached. An UNAVAILABLE the peer answered keeps
                    # its own reason (e.g. booking saying PAYMENTS_UNAVAILABLE).
                    domain_error.reason = f"{self.peer_name.upper()}_UNAVAILABLE"
                outcome = domain_error.reason
                raise domain_error from None
            except ReservaError as error:  # no time left to make the call
                outcome = error.reason
                raise
            finally:
                attrs = {"peer": self.peer_name, "rpc": method, "outcome": outcome}
                _latency.record((time.perf_counter() - started) * 1000, attrs)
                if outcome != "OK":
                    _errors.add(1, attrs)
            self.breaker.record_success()
            return response
