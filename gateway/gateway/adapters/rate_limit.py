"""Rate limits per user, per client IP and per login e-mail, in Redis through the `limits` library
(sliding window counters). Redis down: requests are let through (fail open) and it is logged."""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from kit.breaker import CircuitBreaker

log = logging.getLogger("reserva.gateway.rate_limit")


class RateLimiter:
    def __init__(self, redis_url: str, namespace: str, timeout_s: float, limits: dict[str, str]):
        uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
        self.storage = RedisStorage(
            uri,
            implementation="redispy",
            key_prefix=f"{namespace}:ratelimit",
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        self.strategy = SlidingWindowCounterRateLimiter(self.storage)
        self.items: dict[str, RateLimitItem] = {name: parse(value) for name, value in limits.items()}
        self.breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=2.0)

    async def hit(self, scope: str, identity: str) -> int | None:
        """Count one request; None if allowed, else the seconds to wait (Retry-After)."""
        item = self.items[scope]
        if not self.breaker.allow():
            return None
        try:
            allowed = await self.strategy.hit(item, scope, identity)
            retry_after = None
            if not allowed:
                stats = await self.strategy.get_window_stats(item, scope, identity)
                retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        except Exception as error:  # noqa: BLE001 - any storage failure means "fail open"
            self.breaker.record_failure()
            log.warning("rate limit store unavailable; letting the request through", extra={"error": repr(error)})
            return None
        self.breaker.record_success()
        return retry_after
