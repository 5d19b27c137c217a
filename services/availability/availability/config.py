"""Settings of the availability service (env prefix AVAILABILITY_)."""

from pydantic_settings import SettingsConfigDict

from kit.config import ServiceSettings


class AvailabilitySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AVAILABILITY_", extra="ignore")

    service_name: str = "availability"
    grpc_port: int = 50051
    # The sweeper frees expired holds in small batches (FOR UPDATE SKIP LOCKED).
    sweeper_enabled: bool = True
    sweeper_interval_s: float = 5.0
    sweeper_batch_size: int = 100
    # Place ratings follow the booking service's review events (entrypoints/ratings.py).
    rating_consumer_enabled: bool = True
    # A review event left pending this long (a failed apply, a consumer that died) is retried.
    rating_claim_idle_ms: int = 30_000
    outbox_relay_enabled: bool = True
    place_cache_ttl_s: int = 300
    search_cache_ttl_s: int = 60
