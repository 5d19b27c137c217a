"""Settings of the payments service (environment prefix PAYMENTS_)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from kit.config import ServiceSettings


class PaymentsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="PAYMENTS_", extra="ignore")

    service_name: str = "payments"
    # Hard limit on every card processor call; an unanswered call leaves the payment UNKNOWN.
    provider_timeout_s: float = 10.0
    # HMAC-SHA256 secret of the processor's webhooks (override in every deployment).
    webhook_secret: str = "whsec_sandbox_dev_only"
    webhook_tolerance_s: int = 300
    # The sandbox processor's behaviour.
    sandbox_slow_delay_s: float = 2.0
    sandbox_timeout_delay_s: float = 15.0
    sandbox_webhook_delay_s: float = 0.5
    sandbox_webhooks_enabled: bool = True
    # Background workers (0 disables one).
    reconcile_interval_s: float = 60.0
    reconcile_older_than_s: float = 300.0
    reconcile_batch: int = 100
    idempotency_retention_hours: float = 48.0
    idempotency_sweep_interval_s: float = 600.0
    outbox_relay_enabled: bool = True
