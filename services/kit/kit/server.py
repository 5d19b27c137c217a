"""gRPC server bootstrap on grpc.aio: interceptors, standard health checking (per service),
reflection, background workers, and graceful shutdown (NOT_SERVING, stop accepting, drain in-flight
calls within the grace period, then dispose the engine and Redis)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from kit import event_loop
from kit.config import ServiceSettings
from kit.gc_tuning import tune_for_server
from kit.interceptors import DetailEncoder, ServiceInterceptor
from kit.timezones import iana_names

log = logging.getLogger("reserva.server")

Worker = Callable[[asyncio.Event], Awaitable[None]]


@dataclass
class ServiceRegistration:
    full_name: str  # e.g. "reserva.availability.v1.AvailabilityService"
    add_to_server: Callable[[grpc.aio.Server], None]


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    health: HealthServicer
    stop_event: asyncio.Event
    workers: list[asyncio.Task] = field(default_factory=list)
    on_close: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self, grace_s: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        self.stop_event.set()
        await self.server.stop(grace_s)
        for task in self.workers:
            task.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)
        for close in self.on_close:
            await close()


async def start_server(
    settings: ServiceSettings,
    registrations: list[ServiceRegistration],
    workers: list[Worker] = (),
    detail_encoders: list[DetailEncoder] | None = None,
    on_close: list[Callable[[], Awaitable[None]]] = (),
) -> RunningServer:
    iana_names()  # the zone names are read now, not in the first request that checks one (50-90 ms)
    server = grpc.aio.server(
        interceptors=[ServiceInterceptor(settings.service_name, detail_encoders)],
        options=[("grpc.max_receive_message_length", 4 * 1024 * 1024), ("grpc.so_reuseport", 0)],
    )
    for registration in registrations:
        registration.add_to_server(server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = [r.full_name for r in registrations]
    reflection.enable_server_reflection([*names, "grpc.health.v1.Health", reflection.SERVICE_NAME], server)
    port = server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")
    await server.start()
    for name in [*names, ""]:
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    stop_event = asyncio.Event()
    running = RunningServer(server, port, health, stop_event, on_close=list(on_close))
    running.workers = [asyncio.create_task(w(stop_event)) for w in workers]
    log.info("serving", extra={"service": settings.service_name, "port": port})
    return running


def serve_forever(start: Callable[[], Awaitable[RunningServer]], grace_s: float) -> None:
    """Entry point of a service process: run until SIGTERM/SIGINT, then shut down gracefully."""

    async def main() -> None:
        running = await start()
        tune_for_server()
        print(f"READY {running.port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down", extra={"grace_s": grace_s})
        await running.stop(grace_s)

    event_loop.run(main())
