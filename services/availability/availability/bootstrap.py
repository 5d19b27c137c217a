"""The composition root: runtime (engine, Redis, outbox), caches, handlers' dependencies, servicer,
workers. Nothing is built at import time."""

from __future__ import annotations

from functools import partial

from availability.adapters.caching import PlaceCache, SearchCache
from availability.adapters.orm import outbox
from availability.config import AvailabilitySettings
from availability.entrypoints.ratings import RatingConsumer
from availability.entrypoints.servicer import AvailabilityServicer, slot_conflict_details
from availability.entrypoints.workers import hold_sweeper
from availability.service_layer.handlers import Deps
from availability.service_layer.unit_of_work import AvailabilityUnitOfWork
from kit.cache import Cache, make_redis
from kit.runtime import build_runtime
from kit.server import RunningServer, ServiceRegistration, start_server
from reserva.availability.v1 import availability_pb2_grpc

SERVICE_NAME = "reserva.availability.v1.AvailabilityService"
RATING_BLOCK_MS = 1000


def build_deps(settings: AvailabilitySettings, runtime) -> Deps:
    return Deps(
        uow=partial(AvailabilityUnitOfWork, runtime.session_factory, runtime.probe, runtime.outbox),
        place_cache=PlaceCache(
            Cache(runtime.redis, settings.redis_namespace, "availability:place"), settings.place_cache_ttl_s
        ),
        search_cache=SearchCache(
            Cache(runtime.redis, settings.redis_namespace, "availability:search"), settings.search_cache_ttl_s
        ),
    )


async def start(settings: AvailabilitySettings | None = None, configure_logging: bool = False) -> RunningServer:
    """Start the gRPC server (and its sweeper and outbox relay) on settings.grpc_port (0: any)."""
    settings = settings or AvailabilitySettings()
    runtime = build_runtime(settings, outbox, configure_logging=configure_logging)
    deps = build_deps(settings, runtime)
    servicer = AvailabilityServicer(deps)
    workers = []
    if settings.sweeper_enabled:
        workers.append(hold_sweeper(deps, settings.sweeper_interval_s, settings.sweeper_batch_size))
    if settings.outbox_relay_enabled:
        workers.append(runtime.relay().run)
    on_close = [runtime.close]
    if settings.rating_consumer_enabled:
        # XREADGROUP blocks longer than the kit's short cache timeout: the consumer has its own client.
        stream_redis = make_redis(settings.redis_url, timeout_s=RATING_BLOCK_MS / 1000 + 5)
        ratings = RatingConsumer(
            deps, stream_redis, settings.redis_namespace, RATING_BLOCK_MS, settings.rating_claim_idle_ms
        )
        workers.append(ratings.run)
        on_close.insert(0, stream_redis.aclose)
    workers.append(runtime.ops_publisher().run)
    running = await start_server(
        settings,
        [
            ServiceRegistration(
                SERVICE_NAME,
                lambda server: availability_pb2_grpc.add_AvailabilityServiceServicer_to_server(servicer, server),
            )
        ],
        workers=workers,
        detail_encoders=[slot_conflict_details],
        on_close=on_close,
    )
    running.deps = deps  # type: ignore[attr-defined]  (tests and benchmarks reach the handlers)
    return running
