"""Liveness of the gateway and gRPC health of every service."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gateway.adapters.peers import SERVING
from gateway.entrypoints.responses import LivenessOut
from gateway.entrypoints.schemas import Health
from gateway.entrypoints.security import gateway_of

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=LivenessOut, summary="The gateway process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/v1/health", response_model=Health, summary="gRPC health of every service")
async def platform_health(request: Request) -> Health:
    gateway = gateway_of(request)
    services = await gateway.peers.health(gateway.settings.health_check_timeout_s)
    overall = SERVING if all(s == SERVING for s in services.values()) else "NOT_SERVING"
    return Health(status=overall, services=services)
