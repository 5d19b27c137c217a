"""Redis for what Redis is good at here: a cache that correctness never depends on. Every cache
operation swallows Redis errors (the caller falls back to PostgreSQL) and a breaker stops waiting on
a Redis that is down."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from opentelemetry import metrics
from redis.exceptions import RedisError

from kit.breaker import CircuitBreaker

log = logging.getLogger("reserva.cache")
_meter = metrics.get_meter("reserva.kit.cache")
_lookups = _meter.create_counter("reserva.cache.lookups", unit="{lookup}")

# Hit and miss counts of this process, for tests, benchmarks and the operator dashboard.
CACHE_STATS = {"hit": 0, "miss": 0, "error": 0}


# Sets a versioned value (its version, a newline, anything) unless the key holds a newer version already.
_SET_UNLESS_NEWER = """
local current = redis.call('GET', KEYS[1])
if current then
  local version = tonumber(string.match(current, '^(%d+)\\n'))
  if version and version > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""


def make_redis(url: str, timeout_s: float = 0.5) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, health_check_interval=30
    )


class Cache:
    def __init__(self, redis: aioredis.Redis, namespace: str, name: str):
        self.redis, self.prefix, self.name = redis, f"{namespace}:cache:{name}:", name
        self.breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=2.0)
        self._set_unless_newer = redis.register_script(_SET_UNLESS_NEWER)  # EVALSHA, loaded once

    def _count(self, outcome: str) -> None:
        CACHE_STATS[outcome] += 1
        _lookups.add(1, {"cache": self.name, "outcome": outcome})

    async def _safely(self, coro_factory, default=None):
        if not self.breaker.allow():
            return default
        try:
            result = await coro_factory()
        except (RedisError, OSError) as error:
            self.breaker.record_failure()
            self._count("error")
            log.warning("cache unavailable", extra={"error": repr(error)})
            return default
        self.breaker.record_success()
        return result

    async def get(self, key: str) -> bytes | None:
        value = await self._safely(lambda: self.redis.get(self.prefix + key))
        self._count("hit" if value is not None else "miss")
        return value

    async def get_many(self, keys: list[str], usable=None) -> list[bytes | None]:
        """The values, None for a miss; `usable(value)` False makes a stored value a miss too (a
        marker the caller keeps in the key)."""
        if not keys:
            return []
        values = await self._safely(lambda: self.redis.mget([self.prefix + k for k in keys]), [None] * len(keys))
        values = [v if v is not None and (usable is None or usable(v)) else None for v in values]
        for value in values:
            self._count("hit" if value is not None else "miss")
        return values

    async def set_unless_newer(self, key: str, version: int, value: bytes, ttl_s: int = 300) -> None:
        """Stores `value`, which starts with its version and a newline, unless the key holds a newer version: a
        writer that read before an update cannot put its older copy back over the update's."""
        await self._safely(lambda: self._set_unless_newer(keys=[self.prefix + key], args=[version, value, ttl_s]))

    async def set(self, key: str, value: bytes, ttl_s: int = 300) -> None:
        await self._safely(lambda: self.redis.set(self.prefix + key, value, ex=ttl_s))

    async def delete(self, *keys: str) -> None:
        if keys:
            await self._safely(lambda: self.redis.delete(*[self.prefix + k for k in keys]))

    async def incr(self, key: str) -> int | None:
        return await self._safely(lambda: self.redis.incr(self.prefix + key))
