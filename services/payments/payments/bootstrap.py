"""The composition root: runtime (engine, probe, Redis, outbox), the sandbox card processor, the
use cases' dependencies, the servicer and the workers. Nothing is built at import time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from kit.grpc_client import make_channel
from kit.identity import SYSTEM
from kit.runtime import build_runtime
from kit.server import RunningServer, ServiceRegistration, start_server
from payments.adapters import orm
from payments.adapters.sandbox_processor import SandboxCardProcessor, SandboxWebhooks
from payments.adapters.unit_of_work import SqlAlchemyPaymentsUnitOfWork
from payments.config import PaymentsSettings
from payments.entrypoints import workers
from payments.entrypoints.servicer import PaymentServicer
from payments.service_layer.handlers import Deps
from reserva.payments.v1 import payments_pb2, payments_pb2_grpc

SERVICE_NAME = "reserva.payments.v1.PaymentService"


def utc_now() -> datetime:
    return datetime.now(UTC)


async def start(
    settings: PaymentsSettings, clock: Callable[[], datetime] = utc_now, configure_logging: bool = False
) -> RunningServer:
    runtime = build_runtime(settings, orm.outbox, configure_logging=configure_logging)
    processor = SandboxCardProcessor(
        runtime.session_factory,
        runtime.probe,
        clock,
        webhook_secret=settings.webhook_secret,
        slow_delay_s=settings.sandbox_slow_delay_s,
        timeout_delay_s=settings.sandbox_timeout_delay_s,
        webhook_delay_s=settings.sandbox_webhook_delay_s,
        webhooks_enabled=settings.sandbox_webhooks_enabled,
    )
    deps = Deps(
        uow=partial(SqlAlchemyPaymentsUnitOfWork, runtime.session_factory, runtime.probe, runtime.outbox),
        processor=processor,
        clock=clock,
        webhooks=SandboxWebhooks(settings.webhook_secret, timedelta(seconds=settings.webhook_tolerance_s)),
        provider_timeout_s=settings.provider_timeout_s,
    )
    servicer = PaymentServicer(deps)
    jobs = [processor.run_webhook_delivery]
    if settings.outbox_relay_enabled:
        jobs.append(runtime.relay().run)
    jobs.append(runtime.ops_publisher().run)
    if settings.reconcile_interval_s > 0:
        jobs.append(
            workers.reconciler(
                deps, settings.reconcile_interval_s, settings.reconcile_older_than_s, settings.reconcile_batch
            )
        )
    if settings.idempotency_sweep_interval_s > 0:
        jobs.append(
            workers.idempotency_sweeper(
                deps, settings.idempotency_sweep_interval_s, settings.idempotency_retention_hours
            )
        )
    running = await start_server(
        settings,
        [ServiceRegistration(SERVICE_NAME, partial(payments_pb2_grpc.add_PaymentServiceServicer_to_server, servicer))],
        workers=jobs,
        on_close=[runtime.close],
    )
    # The sandbox delivers its webhooks like a processor would: to this service's own endpoint.
    channel = make_channel(running.address, SERVICE_NAME)
    stub = payments_pb2_grpc.PaymentServiceStub(channel)

    async def deliver(body: bytes, signature: str) -> None:
        await stub.HandleProviderWebhook(
            payments_pb2.HandleProviderWebhookRequest(body=body, signature=signature),
            timeout=settings.default_deadline_s,
            metadata=SYSTEM.to_metadata(),
        )

    processor.deliver = deliver

    async def close_channel() -> None:
        await channel.close()

    running.on_close.insert(0, close_channel)
    running.deps = deps  # for in-process tests and the benchmark
    return running
