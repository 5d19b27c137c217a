"""Settings from environment variables, one prefix per service (AVAILABILITY_DATABASE_URL, ...).
Defaults work on a developer machine with PostgreSQL and Redis on their usual local ports."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What every service needs. Subclasses set `env_prefix` and add their peers."""

    model_config = SettingsConfigDict(extra="ignore")

    service_name: str = "service"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/reserva"
    db_pool_size: int = 10
    db_max_overflow: int = 10
    statement_timeout_ms: int = 5000
    lock_timeout_ms: int = 2000
    idle_in_transaction_session_timeout_ms: int = 10000
    # The lock probe: always on in tests, optional in production (one cheap query per transaction).
    lock_probe_enabled: bool = True
    lock_probe_strict: bool = False
    # Fraction of transactions the probe measures when NOT strict (production). Each measurement is
    # one more round trip and a pg_locks scan on the server; a busy service may measure e.g. 0.05 of
    # its transactions and still see its lock profile. Strict mode (tests) measures every one.
    lock_probe_sample_rate: float = 1.0
    read_lock_budget: int = 10
    write_relation_lock_budget: int = 16
    write_advisory_lock_budget: int = 1
    # Statements slower than this are logged with their duration.
    slow_statement_ms: int = 200
    # Every this many seconds the process publishes its operations snapshot (outbox backlog, cache
    # hits, lock probe figures, slow statements) to Redis for the gateway's operator dashboard; 0: never.
    ops_snapshot_interval_s: float = 5.0

    redis_url: str = "redis://127.0.0.1:6379/0"
    # Prefix of every Redis key and stream, so that test runs and deployments never see each other.
    redis_namespace: str = "reserva"
    redis_timeout_s: float = 0.5

    grpc_host: str = "127.0.0.1"
    grpc_port: int = 0
    shutdown_grace_s: float = 10.0
    default_deadline_s: float = 5.0

    # OpenTelemetry span exporter: none | console | otlp (endpoint from the standard OTEL_* variables).
    otel_exporter: str = "none"
    # Trace SQLAlchemy statements, Redis commands and (gateway) HTTP requests with the official
    # OpenTelemetry instrumentations, as children of the RPC or request that made them.
    otel_instrument: bool = True
    # Metrics exporter: none | console | otlp | prometheus. Prometheus serves /metrics on
    # metrics_host:metrics_port (0: a free port), apart from the API so that no Ingress exposes it.
    metrics_exporter: str = "none"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    log_level: str = "INFO"
    log_json: bool = True
