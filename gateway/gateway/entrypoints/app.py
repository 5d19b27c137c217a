"""The FastAPI application: routes under /v1, the edge middleware, the one error handler, and the
OpenAPI document (errors documented as application/problem+json)."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from sqlalchemy.exc import DBAPIError

from gateway.bootstrap import build_gateway
from gateway.config import GatewaySettings
from gateway.entrypoints.middleware import EdgeMiddleware
from gateway.entrypoints.problems import PROBLEM_JSON, install_error_handlers
from gateway.entrypoints.routes import (
    announcements,
    auth,
    booking_outcomes,
    bookings,
    dead_letters,
    health,
    notifications,
    ops,
    payments,
    places,
    reports,
    reviews,
    series,
    users,
    waitlist,
)
from gateway.entrypoints.schemas import Problem
from gateway.entrypoints.workers import contact_share_retrier
from gateway.service_layer import handlers
from kit.context import current_operation
from kit.errors import ReservaError
from kit.telemetry import instrument_app

log = logging.getLogger("reserva.gateway")

_ERROR_STATUSES = {
    "400": "Malformed request (for example invalid JSON)",
    "401": "Missing, invalid, expired or revoked access token",
    "402": "Payment declined (code PAYMENT_DECLINED)",
    "403": "Authenticated but not allowed",
    "404": "Unknown resource, or not yours to see",
    "409": "Conflict: slot taken (with conflicting_ranges), illegal transition, concurrent modification",
    "412": "If-Match etag is stale",
    "413": "Request body too large",
    "422": "Invalid input",
    "429": "Rate limited (see Retry-After)",
    "503": "A service is unavailable (see Retry-After)",
    "504": "A service did not answer before the deadline",
}


async def _ensure_bootstrap_agent(gateway) -> None:
    settings = gateway.settings
    if not settings.bootstrap_agent_password:
        return
    if settings.bootstrap_agent_password == GatewaySettings.model_fields["bootstrap_agent_password"].default:
        log.warning("the bootstrap agent uses the development password; set GATEWAY_BOOTSTRAP_AGENT_PASSWORD")
    try:
        await handlers.ensure_agent(gateway.identity, settings.bootstrap_agent_email, settings.bootstrap_agent_password)
    except (ReservaError, DBAPIError, OSError) as error:
        # The API still starts (the database may come back); identity calls answer 503 meanwhile.
        log.error("could not create the bootstrap agent", extra={"error": repr(error)[:300]})


async def name_operation(request: Request) -> None:
    """Name the operation after the route (lock probe readings and logs group by it)."""
    route = request.scope.get("route")
    current_operation.set(f"{request.method} {getattr(route, 'path', request.url.path)}")


def create_app(settings: GatewaySettings, gateway_factory=build_gateway) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.gateway = gateway_factory(settings)
        await _ensure_bootstrap_agent(app.state.gateway)
        gateway = app.state.gateway
        stop = asyncio.Event()
        workers = [
            # the gateway's own operations snapshot, like every service's
            asyncio.create_task(gateway.runtime.ops_publisher().run(stop)),
            asyncio.create_task(
                contact_share_retrier(gateway.identity, gateway.contact_sender, settings.contact_share_interval_s)(stop)
            ),
        ]
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*workers, return_exceptions=True)
            await gateway.close()

    app = FastAPI(
        title="Reserva API",
        version="1.0.0",
        description="Book places: identity, places and availability, bookings, payments, notifications, reports.",
        lifespan=lifespan,
        dependencies=[Depends(name_operation)],
    )
    for module in (health, auth, users, places, bookings, payments, notifications, reviews, reports, ops):
        app.include_router(module.router)
    for module in (series, booking_outcomes, waitlist, announcements, dead_letters):
        app.include_router(module.router)
    install_error_handlers(app)
    app.add_middleware(EdgeMiddleware)
    if settings.otel_instrument:
        instrument_app(app)

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
        problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)  # FastAPI's default shape is replaced by problem+json
                for status, description in _ERROR_STATUSES.items():
                    responses.setdefault(status, {"description": description, "content": problem})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
