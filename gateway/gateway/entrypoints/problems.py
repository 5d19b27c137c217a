"""The one place where errors become HTTP answers: application/problem+json (RFC 9457) with a
stable `code` (the error's reason). Statuses come from kit.error_table, shared with the services.
Nothing the caller sends can produce a 500, and no exception text or traceback reaches a client."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from google.protobuf import json_format
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from kit.db import sqlstate_of
from kit.error_table import INTERNAL_MESSAGE, http_status_for
from kit.errors import ErrorKind, InvalidArgument, ReservaError, Unavailable
from kit.grpc_client import error_from_rpc
from kit.interceptors import as_domain_error
from reserva.availability.v1 import availability_pb2

log = logging.getLogger("reserva.gateway.errors")

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://problems.reserva.dev/"
# Seconds a client should wait before retrying when a service is down.
UNAVAILABLE_RETRY_AFTER_S = 2


def problem_body(status: int, code: str, detail: str, **extra: object) -> dict:
    body = {
        "type": TYPE_BASE + code.lower().replace("_", "-"),
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def problem_response(status: int, code: str, detail: str, headers: dict | None = None, **extra: object) -> Response:
    content = json.dumps(problem_body(status, code, detail, **extra), default=str).encode()
    return Response(content, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def conflicting_ranges(error: ReservaError) -> list[dict] | None:
    """The SlotConflict detail of a SLOT_UNAVAILABLE error as JSON ranges."""
    for detail in error.details.get("proto_details", []) or []:
        if detail.Is(availability_pb2.SlotConflict.DESCRIPTOR):
            conflict = availability_pb2.SlotConflict()
            detail.Unpack(conflict)
            return [json_format.MessageToDict(r, preserving_proto_field_name=True) for r in conflict.conflicting_ranges]
    return [] if error.reason == "SLOT_UNAVAILABLE" else None


def error_response(error: ReservaError, request: Request | None = None) -> Response:
    status = http_status_for(error)
    headers: dict[str, str] = {}
    if status == 500:
        return problem_response(500, "INTERNAL", INTERNAL_MESSAGE)
    if error.reason == "CONCURRENT_MODIFICATION" and request is not None and request.headers.get("if-match"):
        status = 412  # the client's precondition (its etag) no longer holds
    if status == 503:
        headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
    if status == 409 and error.kind is ErrorKind.CONFLICT:
        # Changed meanwhile, busy, or the same request still in flight: not an outcome, try again.
        headers["Retry-After"] = "1"
    if status == 429:
        headers["Retry-After"] = str(error.metadata.get("retry_after", "1"))
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="reserva"'
    return problem_response(
        status,
        error.reason,
        error.message[:2000],
        headers=headers,
        instance=request.url.path if request is not None else None,
        conflicting_ranges=conflicting_ranges(error) if status == 409 else None,
    )


# SQLSTATE classes meaning "the database cannot serve now": connection exceptions, insufficient
# resources (too many connections), operator intervention (shutdown, starting up).
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "53", "57P")


def database_error(error: Exception) -> ReservaError | None:
    """The identity database's transient failures as domain errors (409 retry / 503), else None."""
    if isinstance(error, UnicodeError):  # e.g. a lone surrogate the database driver cannot encode
        return InvalidArgument("the request contains text that is not valid Unicode", reason="INVALID_ARGUMENT")
    if isinstance(error, OSError):
        return Unavailable("the identity database is unreachable; retry later", reason="IDENTITY_UNAVAILABLE")
    if not isinstance(error, DBAPIError):
        return None
    mapped = as_domain_error(error)
    if mapped is not None:
        return mapped
    state = sqlstate_of(error) or ""
    if state.startswith("22"):  # data exception: a value PostgreSQL cannot take (e.g. a NUL character)
        return InvalidArgument("a value in the request cannot be stored or searched", reason="INVALID_ARGUMENT")
    if error.connection_invalidated or state.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES) or not state:
        return Unavailable("the identity database is unavailable; retry later", reason="IDENTITY_UNAVAILABLE")
    return None


def _validation_errors(error: RequestValidationError) -> list[dict]:
    # The offending input is not echoed back: it may be huge or sensitive.
    return [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))[:300], "type": e.get("type")}
        for e in error.errors()[:50]
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ReservaError)
    async def on_domain_error(request: Request, error: ReservaError) -> Response:
        if http_status_for(error) == 500:
            log.error("internal error", extra={"reason": error.reason, "path": request.url.path})
        return error_response(error, request)

    @app.exception_handler(grpc.aio.AioRpcError)
    async def on_rpc_error(request: Request, error: grpc.aio.AioRpcError) -> Response:
        return error_response(error_from_rpc(error), request)

    @app.exception_handler(RequestValidationError)
    async def on_invalid_request(request: Request, error: RequestValidationError) -> Response:
        errors = _validation_errors(error)
        if any(e["type"] == "json_invalid" for e in errors):
            return problem_response(400, "INVALID_JSON", "the request body is not valid JSON", errors=errors)
        return problem_response(
            422,
            "INVALID_ARGUMENT",
            "the request has invalid or missing fields",
            errors=errors,
            instance=request.url.path,
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, error: StarletteHTTPException) -> Response:
        code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 401: "UNAUTHENTICATED"}.get(
            error.status_code, HTTPStatus(error.status_code).name
        )
        detail = error.detail if isinstance(error.detail, str) else HTTPStatus(error.status_code).phrase
        return problem_response(error.status_code, code, detail, headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def on_bug(request: Request, error: Exception) -> Response:
        mapped = database_error(error)
        if mapped is not None:
            log.warning("database trouble", extra={"path": request.url.path, "reason": mapped.reason})
            return error_response(mapped, request)
        log.exception("unexpected error", extra={"path": request.url.path})
        return problem_response(500, "INTERNAL", INTERNAL_MESSAGE)
