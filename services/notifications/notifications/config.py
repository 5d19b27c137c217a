"""Settings of the notifications service (environment prefix NOTIFICATIONS_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from kit.config import ServiceSettings


class NotificationsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFICATIONS_", extra="ignore")

    service_name: str = "notifications"

    # SMTP (defaults: the local sink `reserva up` runs).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_timeout_s: float = 10.0
    # A PEM file of the certificate authority a private relay's certificate is checked against for
    # STARTTLS; empty: the system's trusted authorities.
    smtp_ca_file: str = ""
    mail_from: str = "Reserva <no-reply@reserva.local>"

    webhook_timeout_s: float = 5.0
    # Webhooks to loopback, private and link-local addresses (and plain HTTP to loopback): for local
    # development and tests only. Off, a user's webhook cannot make the service call into its own
    # network (the cluster's services, the cloud's metadata endpoint).
    webhook_private_targets: bool = False
    sms_provider: str = "sandbox"

    # Event consumption: streams {namespace}:events:{service} read by one consumer group.
    source_services: list[str] = ["booking", "payments", "availability"]
    consumer_group: str = "notifications"
    consumer_name: str = ""  # default: host-pid-random, unique per process
    consumer_batch: int = 50
    consumer_block_ms: int = 1000
    # Messages of one batch processed at once (in per-aggregate order).
    consumer_concurrency: int = 8
    # Pending messages idle this long (their consumer is presumably dead) are claimed (XAUTOCLAIM).
    claim_idle_ms: int = 30_000
    claim_interval_s: float = 5.0
    # Deliveries of one stream message before it is dead-lettered.
    max_event_attempts: int = 5

    # Sending.
    send_batch: int = 20
    send_concurrency: int = 8
    # A claimed notification is its sender's this long, counted again from the start of its send; one
    # whose lease ran out while it waited for its turn is not sent (it is due for the next claim).
    send_lease_s: float = 60.0
    send_max_attempts: int = 5
    retry_base_s: float = 30.0
    retry_cap_s: float = 3600.0
    poll_interval_s: float = 0.5

    # Reminders: seconds before a confirmed booking starts.
    reminder_offsets_s: list[int] = [86_400, 3_600]
    reminder_batch: int = 50

    announcement_batch: int = 200
