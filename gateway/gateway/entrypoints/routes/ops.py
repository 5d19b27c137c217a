"""The operator dashboard: `GET /v1/ops/overview` (agents) gives its figures as JSON, for people's
browsers and for scripts alike; `GET /ops/dashboard` is the page (plain HTML and JavaScript served
from this package, nothing from a CDN) that logs in, polls the overview and draws it."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from gateway.entrypoints.responses import OpsOverviewOut
from gateway.entrypoints.security import Principal, agent_only, gateway_of
from gateway.service_layer import ops

router = APIRouter(tags=["operations"])
STATIC = Path(__file__).resolve().parents[1] / "static" / "ops"
# The page loads only its own script and style sheet and talks only to this origin.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
ASSETS = {
    "dashboard": ("dashboard.html", "text/html; charset=utf-8"),
    "dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
}


@router.get(
    "/v1/ops/overview",
    response_model=OpsOverviewOut,
    response_model_exclude_unset=True,
    summary="Agents: live lock usage per service, blocked sessions, slow statements, outbox lag, cache hit rate",
)
async def overview(request: Request, response: Response, _: Principal = Depends(agent_only)) -> dict[str, Any]:
    gateway = gateway_of(request)
    response.headers["Cache-Control"] = "no-store"
    return await ops.ops_overview(gateway.ops_monitor, gateway.settings.slow_statement_ms)


@functools.cache
def _read(filename: str) -> bytes:
    return (STATIC / filename).read_bytes()


def _asset(name: str):
    filename, media_type = ASSETS[name]

    # A plain Response, not FileResponse: the files are small, and a streamed body would listen for
    # a client disconnect on the edge middleware's replayed `receive`, which reports one at once.
    async def serve() -> Response:
        return Response(_read(filename), media_type=media_type, headers=PAGE_HEADERS)

    return serve


for _name in ASSETS:
    router.add_api_route(f"/ops/{_name}", _asset(_name), methods=["GET"], include_in_schema=False)
