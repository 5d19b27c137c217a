"""Composition root of the notifications service: runtime (engine, Redis, lock probe), channel
adapters, the gRPC servicer and the workers. Nothing is built at import time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial

import redis.asyncio as aioredis

from kit.outbox import stream_name
from kit.runtime import build_runtime
from kit.server import RunningServer, ServiceRegistration, start_server
from notifications.adapters import orm
from notifications.adapters.email_sender import SmtpConfig, SmtpEmailSender
from notifications.adapters.sms import SandboxSmsProvider
from notifications.adapters.templates import JinjaRenderer
from notifications.adapters.webhook import HttpxWebhookSender
from notifications.config import NotificationsSettings
from notifications.domain.model import Channel, RetryPolicy
from notifications.entrypoints.servicer import NotificationServicer
from notifications.entrypoints.workers import EventConsumer, default_consumer_name, polling_worker
from notifications.service_layer import delivery
from notifications.service_layer.context import Services
from notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from reserva.notifications.v1 import notifications_pb2_grpc

SERVICE_FULL_NAME = "reserva.notifications.v1.NotificationService"


@dataclass
class Notifier:
    """Handles on the parts of a running service that tests and operators inspect."""

    services: Services
    consumer: EventConsumer
    sms: SandboxSmsProvider
    streams: list[str] = field(default_factory=list)


def event_streams(settings: NotificationsSettings) -> list[str]:
    return [stream_name(settings.redis_namespace, s) for s in settings.source_services]


def build_services(settings: NotificationsSettings, runtime) -> tuple[Services, SandboxSmsProvider, HttpxWebhookSender]:
    sms = SandboxSmsProvider()
    webhooks = HttpxWebhookSender(settings.webhook_timeout_s, private_targets=settings.webhook_private_targets)
    email = SmtpEmailSender(
        SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            starttls=settings.smtp_starttls,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout_s=settings.smtp_timeout_s,
            sender=settings.mail_from,
            ca_file=settings.smtp_ca_file,
        )
    )
    services = Services(
        uow=lambda: NotificationsUnitOfWork(runtime.session_factory, runtime.probe, runtime.outbox),
        renderer=JinjaRenderer(),
        senders={Channel.EMAIL: email, Channel.SMS: sms, Channel.WEBHOOK: webhooks},
        retry=RetryPolicy(settings.send_max_attempts, settings.retry_base_s, settings.retry_cap_s),
        reminder_offsets_s=list(settings.reminder_offsets_s),
        webhook_private_targets=settings.webhook_private_targets,
    )
    return services, sms, webhooks


async def start(settings: NotificationsSettings) -> RunningServer:
    """Starts the gRPC server with the consumer, sender, reminder and announcement workers.
    `running.notifier` exposes the consumer and the SMS sandbox."""
    runtime = build_runtime(settings, orm.outbox)
    services, sms, webhooks = build_services(settings, runtime)
    # XREADGROUP blocks longer than the kit's short cache timeout: the consumer has its own client.
    stream_redis = aioredis.Redis.from_url(
        settings.redis_url, socket_timeout=settings.consumer_block_ms / 1000 + 5, socket_connect_timeout=2
    )
    wake_sender = asyncio.Event()
    consumer = EventConsumer(
        services,
        stream_redis,
        event_streams(settings),
        settings.consumer_group,
        settings.consumer_name or default_consumer_name(),
        batch=settings.consumer_batch,
        block_ms=settings.consumer_block_ms,
        claim_idle_ms=settings.claim_idle_ms,
        claim_interval_s=settings.claim_interval_s,
        max_attempts=settings.max_event_attempts,
        concurrency=settings.consumer_concurrency,
        on_recorded=wake_sender.set,
    )
    lease = timedelta(seconds=settings.send_lease_s)
    workers = [
        consumer.run,
        polling_worker(
            "sender",
            partial(delivery.send_due, services, settings.send_batch, lease, settings.send_concurrency),
            settings.poll_interval_s,
            wake_sender,
        ),
        polling_worker(
            "reminders",
            partial(delivery.fire_due_reminders, services, settings.reminder_batch),
            settings.poll_interval_s,
        ),
        polling_worker(
            "announcements",
            partial(delivery.process_announcement_batch, services, settings.announcement_batch),
            settings.poll_interval_s,
        ),
        runtime.ops_publisher().run,
    ]
    servicer = NotificationServicer(services)
    running = await start_server(
        settings,
        [
            ServiceRegistration(
                SERVICE_FULL_NAME, partial(notifications_pb2_grpc.add_NotificationServiceServicer_to_server, servicer)
            )
        ],
        workers=workers,
        on_close=[webhooks.aclose, services.senders[Channel.EMAIL].aclose, stream_redis.aclose, runtime.close],
    )
    running.notifier = Notifier(services, consumer, sms, event_streams(settings))  # type: ignore[attr-defined]
    return running
