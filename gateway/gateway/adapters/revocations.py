"""Revoked access tokens in Redis: a denylist entry per logged-out token (until it expires) and a
"not before" marker per user whose sessions were ended. If Redis is down the check fails open (the
access token lifetime is short) and says so in the log."""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from kit.breaker import CircuitBreaker

log = logging.getLogger("reserva.gateway.revocations")


class AccessRevocations:
    def __init__(self, redis: aioredis.Redis, namespace: str, access_ttl_s: int, clock=time.time):
        self.redis, self.prefix, self.ttl_s, self._clock = redis, f"{namespace}:identity:", access_ttl_s, clock
        self.breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=2.0)

    async def _safely(self, operation, default=None):
        if not self.breaker.allow():
            return default
        try:
            result = await operation()
        except (RedisError, OSError) as error:
            self.breaker.record_failure()
            log.warning("token revocation store unavailable", extra={"error": repr(error)})
            return default
        self.breaker.record_success()
        return result

    async def revoke_token(self, claims) -> None:
        ttl = max(1, int(claims.expires_at - self._clock()) + 5)
        await self._safely(lambda: self.redis.set(f"{self.prefix}jti:{claims.jti}", b"1", ex=ttl))

    async def revoke_users(self, user_ids: list[str]) -> None:
        now_ms = str(int(self._clock() * 1000))

        async def write():
            async with self.redis.pipeline(transaction=False) as pipe:
                for user_id in user_ids:
                    pipe.set(f"{self.prefix}not-before:{user_id}", now_ms, ex=self.ttl_s + 60)
                await pipe.execute()

        await self._safely(write)

    async def is_revoked(self, claims) -> bool:
        keys = [f"{self.prefix}jti:{claims.jti}", f"{self.prefix}not-before:{claims.user_id}"]
        values = await self._safely(lambda: self.redis.mget(keys))
        if not values:
            return False
        denied, not_before = values
        return denied is not None or (not_before is not None and claims.issued_at_ms <= int(not_before))
