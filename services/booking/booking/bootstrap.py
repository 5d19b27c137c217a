"""The composition root: runtime (engine, Redis, outbox), peer clients, the handlers' dependencies,
the servicer and the workers (outbox relay, sweeper + saga recovery). Nothing at import time."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

from booking.adapters.availability_client import AvailabilityClient
from booking.adapters.event_mapping import to_outbox
from booking.adapters.orm import outbox
from booking.adapters.payments_client import PaymentsClient
from booking.adapters.place_cache import PlaceSummaryCache
from booking.config import BookingSettings
from booking.entrypoints.servicer import BookingServicer, slot_conflict_details
from booking.entrypoints.workers import run_sweeper
from booking.service_layer.admission import Admission
from booking.service_layer.flows import Deps
from booking.service_layer.unit_of_work import BookingUnitOfWork
from kit.cache import Cache
from kit.runtime import build_runtime
from kit.server import RunningServer, ServiceRegistration, start_server
from reserva.booking.v1 import booking_pb2_grpc

SERVICE_NAME = "reserva.booking.v1.BookingService"


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_deps(settings: BookingSettings, runtime, clock=utc_now) -> Deps:
    return Deps(
        uow=partial(BookingUnitOfWork, runtime.session_factory, runtime.probe, runtime.outbox, to_outbox),
        availability=AvailabilityClient.connect(
            settings.availability_addr, settings.peer_deadline_s, settings.max_holds_in_flight_per_place
        ),
        payments=PaymentsClient.connect(settings.payments_addr, settings.peer_deadline_s),
        settings=settings,
        clock=clock,
        admission=Admission(settings.max_concurrent_flows, settings.flow_reserve_s),
        place_cache=PlaceSummaryCache(
            Cache(runtime.redis, settings.redis_namespace, "booking:place"), settings.place_cache_ttl_s
        ),
    )


async def start(settings: BookingSettings | None = None, configure_logging: bool = False) -> RunningServer:
    """Start the booking gRPC server with its workers on settings.grpc_port (0: any free port)."""
    settings = settings or BookingSettings()
    runtime = build_runtime(settings, outbox, configure_logging=configure_logging)
    deps = build_deps(settings, runtime)
    servicer = BookingServicer(deps)
    workers = []
    if settings.workers_enabled:
        workers = [runtime.relay().run, partial(run_sweeper, deps)]
    workers.append(runtime.ops_publisher().run)

    async def close() -> None:
        await deps.admission.drain(settings.shutdown_grace_s)
        await deps.availability.close()
        await deps.payments.close()
        await runtime.close()

    running = await start_server(
        settings,
        [
            ServiceRegistration(
                SERVICE_NAME, lambda server: booking_pb2_grpc.add_BookingServiceServicer_to_server(servicer, server)
            )
        ],
        workers=workers,
        detail_encoders=[slot_conflict_details],
        on_close=[close],
    )
    running.deps = deps  # type: ignore[attr-defined]  (tests and the benchmark reach the workers)
    running.runtime = runtime  # type: ignore[attr-defined]  (tests publish the outbox by hand)
    return running
