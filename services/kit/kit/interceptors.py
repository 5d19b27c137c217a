"""The one server interceptor every service uses: context (operation, caller, deadline), trace
extraction, request logging, and the mapping of domain errors to gRPC statuses with a
google.rpc.Status carrying ErrorInfo(reason) in the trailers. Unexpected exceptions become INTERNAL
with a fixed message; the traceback goes to the log and the span only."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from kit.context import current_caller, current_deadline, current_operation
from kit.db import RETRYABLE_SQLSTATES, TIMEOUT_SQLSTATES, sqlstate_of
from kit.error_table import INTERNAL_MESSAGE, grpc_status_for
from kit.errors import Conflict, InvalidArgument, ReservaError, Unavailable
from kit.identity import Caller
from kit.telemetry import parent_unsampled

log = logging.getLogger("reserva.rpc")
_tracer = trace.get_tracer("reserva.kit.grpc")


@contextmanager
def _server_span(name: str, parent) -> Iterator[trace.Span]:
    """The call's server span, child of the caller's context; for a caller's trace nobody samples,
    no span: the caller's context becomes the current one as it is (calls onwards carry it)."""
    if not parent_unsampled(parent):
        # Unexpected exceptions are recorded by the interceptor, not by the span: a refusal (a taken
        # slot, a stale etag) is an answer, and the SDK would format a traceback for each.
        with _tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER, record_exception=False) as span:
            yield span
        return
    token = otel_context.attach(parent)
    try:
        yield trace.get_current_span()
    finally:
        otel_context.detach(token)


_meter = metrics.get_meter("reserva.kit.grpc")
_latency = _meter.create_histogram("reserva.rpc.duration", unit="ms")
_errors = _meter.create_counter("reserva.rpc.errors", unit="{error}")

STATUS_DETAILS_KEY = "grpc-status-details-bin"
# The codes OpenTelemetry's RPC conventions count as a server span's error.
_SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
DOMAIN = "reserva.app"

# Turns a domain error's structured details into extra proto details (e.g. SlotConflict).
DetailEncoder = Callable[[ReservaError], list[Message]]


def status_trailers(code: grpc.StatusCode, error: ReservaError, extra: list[Message]) -> tuple:
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN, metadata=error.metadata)
    details = []
    for message in [info, *extra]:
        packed = any_pb2.Any()
        packed.Pack(message)
        details.append(packed)
    status = status_pb2.Status(code=code.value[0], message=error.message, details=details)
    return ((STATUS_DETAILS_KEY, status.SerializeToString()),)


def as_domain_error(error: BaseException) -> ReservaError | None:
    if isinstance(error, ReservaError):
        return error
    if isinstance(error, ConnectionError | TimeoutError) and not isinstance(error, ReservaError):
        # The database (or Redis) refused or dropped the connection: nothing was committed.
        return Unavailable("a backing store is unreachable right now; retry shortly", reason="STORE_UNAVAILABLE")
    if isinstance(error, PoolTimeout):
        return Unavailable(
            "the service is overloaded (no database connection free); retry shortly", reason="OVERLOADED"
        )
    if isinstance(error, DBAPIError):
        state = sqlstate_of(error)
        # Connection exceptions (08), insufficient resources such as too many connections (53), a
        # backend terminated by an operator or a shutdown (57P01-57P03): the database, not the
        # request, is the problem, and a retry is safe (the transaction did not commit).
        if error.connection_invalidated or (
            state and (state[:2] in ("08", "53") or state in ("57P01", "57P02", "57P03"))
        ):
            return Unavailable("the database is unavailable right now; retry shortly", reason="DATABASE_UNAVAILABLE")
        if state in RETRYABLE_SQLSTATES or state in TIMEOUT_SQLSTATES:
            return Conflict("the database was busy (lock or statement timeout); retry the request")
        if state and state.startswith("22"):
            # SQLSTATE class 22, data exceptions: a value the caller sent that PostgreSQL cannot
            # store (a NUL character, a number or date out of range). The caller's to fix.
            detail = str(getattr(error.orig, "args", [""])[0] or "").split("\n")[0][:200]
            return InvalidArgument(f"a value in the request cannot be stored: {detail}", reason="INVALID_VALUE")
    return None


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, service_name: str, detail_encoders: list[DetailEncoder] | None = None):
        self.service_name = service_name
        self.detail_encoders = detail_encoders or []

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        behavior = handler.unary_unary

        async def wrapped(request, context: grpc.aio.ServicerContext):
            operation = method.rsplit("/", 1)[-1]
            metadata = tuple(context.invocation_metadata() or ())
            carrier = {k: v for k, v in metadata if isinstance(v, str)}
            remaining = context.time_remaining()
            tokens = (
                current_operation.set(operation),
                current_caller.set(Caller.from_metadata(metadata)),
                current_deadline.set(None if remaining is None else time.monotonic() + remaining),
            )
            started = time.perf_counter()
            outcome = "OK"
            with _server_span(method.lstrip("/"), propagate.extract(carrier)) as span:
                try:
                    try:
                        return await behavior(request, context)
                    except Exception as raw:
                        outcome, retryable = self._answer_error(raw, context, span, method)
                    # The answer is set on the context and the call returns, keeping nothing of
                    # `raw` (its traceback holds this frame). A refusal is an everyday answer (a
                    # taken slot), and context.abort() raises an exception that grpc keeps in a
                    # reference cycle with this frame: about a hundred objects per refusal for the
                    # garbage collector, whose pauses showed in the contended p99.9. Except for
                    # UNAVAILABLE: abort() answers with trailers only, which the callers' channel
                    # retry policy may retry (kit.grpc_client); a returned answer carries an empty
                    # message, which commits the call.
                    if retryable:
                        await context.abort(context.code(), context.details(), context.trailing_metadata())
                    return None
                finally:
                    elapsed_ms = (time.perf_counter() - started) * 1000
                    attrs = {"service": self.service_name, "rpc": operation, "outcome": outcome}
                    _latency.record(elapsed_ms, attrs)
                    if outcome != "OK":
                        _errors.add(1, attrs)
                    log.info("rpc", extra={"rpc": operation, "outcome": outcome, "ms": round(elapsed_ms, 2)})
                    for var, token in zip((current_operation, current_caller, current_deadline), tokens, strict=True):
                        var.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            wrapped,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _answer_error(self, raw: Exception, context: grpc.aio.ServicerContext, span, method: str) -> tuple[str, bool]:
        """Sets the status (and the google.rpc.Status trailer) for an exception; returns the outcome
        label and whether a caller's channel may retry the answer (UNAVAILABLE). Unexpected
        exceptions answer INTERNAL with a fixed message; the traceback is logged."""
        error = as_domain_error(raw)
        if error is None or error.kind.name == "INTERNAL":
            span.record_exception(raw)
            span.set_status(Status(StatusCode.ERROR, "internal"))
            log.exception("unexpected error", extra={"rpc": method})
            context.set_code(grpc.StatusCode.INTERNAL)
            context.set_details(INTERNAL_MESSAGE)
            return "INTERNAL", False
        code = grpc_status_for(error)
        span.set_attribute("reserva.error.reason", error.reason)
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        if code in _SERVER_FAULTS:  # a refusal of the request is an answer, not a failed span
            span.set_status(Status(StatusCode.ERROR, error.reason))
        extra = [m for encode in self.detail_encoders for m in encode(error)]
        context.set_code(code)
        context.set_details(error.message)
        context.set_trailing_metadata(status_trailers(code, error, extra))
        return error.reason, code is grpc.StatusCode.UNAVAILABLE
