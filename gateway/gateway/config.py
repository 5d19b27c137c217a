"""Gateway settings (env prefix GATEWAY_): HTTP port, the four peers, tokens, limits."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from kit.config import ServiceSettings


class GatewaySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    http_host: str = "127.0.0.1"
    # 0 picks a free port; the process prints `READY <port>` once listening.
    http_port: int = 8080
    # How long an idle keep-alive connection stays open. Longer than clients' and load balancers'
    # own idle timeouts (httpx 5 s, AWS ALB 60 s), so that the client side closes first: a server
    # closing at the moment a client reuses the connection loses that request (a ReadError).
    http_keep_alive_s: int = 75
    # The API's address as apps and calendar apps reach it (behind a load balancer, its public
    # address), for the links the gateway hands out; empty: the address the request came to.
    public_base_url: str = ""

    availability_addr: str = "127.0.0.1:50051"
    booking_addr: str = "127.0.0.1:50052"
    payments_addr: str = "127.0.0.1:50053"
    notifications_addr: str = "127.0.0.1:50054"

    # Budget of one HTTP request, propagated to every gRPC call it makes.
    request_deadline_s: float = 8.0
    health_check_timeout_s: float = 1.0

    jwt_secret: str = "dev-only-secret-change-me-in-production-0123456789"
    jwt_issuer: str = "reserva"
    jwt_audience: str = "reserva-api"
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600

    # `limits` notation. Per authenticated user, per client IP, and per e-mail on login attempts.
    rate_limit_per_user: str = "600/minute"
    rate_limit_per_ip: str = "3000/minute"
    rate_limit_login: str = "10/minute"

    # Request bodies above this are refused with 413 before they are parsed.
    max_body_bytes: int = 1024 * 1024
    # How long a POST's response is replayed for the same Idempotency-Key.
    idempotency_ttl_s: int = 24 * 3600
    report_cache_ttl_s: int = 60
    # The first agent, created at start-up if missing (agents create every other agent). An empty
    # password disables it; the default is for development only and is logged as such.
    bootstrap_agent_email: str = "agent@reserva.dev"
    bootstrap_agent_password: str = "reserva-agent-dev-password"
    bulk_batch_size: int = 100
    # How often the gateway retries telling notifications the contact details (e-mail, locale, time
    # zone, roles) it could not tell when a user registered or changed them.
    contact_share_interval_s: float = 5.0
    # A change still untold this long after it was made goes to the retry worker, which doubles
    # the wait after each failure (up to an hour).
    contact_retry_base_s: float = 10.0
