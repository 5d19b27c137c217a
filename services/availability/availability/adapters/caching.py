"""Redis caches. Correctness never depends on them: every method degrades to "miss" when Redis is
down (kit.cache.Cache never raises). Search results are keyed by a version that every calendar or
place change bumps, so a stale entry is simply never read again (and expires by TTL)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from types import SimpleNamespace

from availability.adapters.repository import place_from_row, place_values
from availability.domain.model import Place
from kit.cache import Cache


class PlaceCache:
    def __init__(self, cache: Cache, ttl_s: int = 300):
        self.cache, self.ttl_s = cache, ttl_s

    @staticmethod
    def _encode(place: Place) -> bytes:
        values = place_values(place)
        values.update(id=place.id, create_time=place.create_time.isoformat(), update_time=place.update_time.isoformat())
        return json.dumps(values).encode()

    @staticmethod
    def _decode(raw: bytes) -> Place:
        values = json.loads(raw)
        values["create_time"] = datetime.fromisoformat(values["create_time"])
        values["update_time"] = datetime.fromisoformat(values["update_time"])
        return place_from_row(SimpleNamespace(**values))

    async def get_many(self, ids: list[str]) -> dict[str, Place]:
        found = {}
        for place_id, raw in zip(ids, await self.cache.get_many(ids), strict=True):
            if raw is not None:
                found[place_id] = self._decode(raw)
        return found

    async def put(self, places: list[Place]) -> None:
        for place in places:
            await self.cache.set(place.id, self._encode(place), self.ttl_s)

    async def forget(self, place_id: str) -> None:
        await self.cache.delete(place_id)


class SearchCache:
    VERSION_KEY = "version"

    def __init__(self, cache: Cache, ttl_s: int = 60):
        self.cache, self.ttl_s = cache, ttl_s
        self._pending: set[asyncio.Task] = set()

    async def version(self) -> str | None:
        """The current calendar version, or None when Redis is unreachable (then: no caching)."""
        down = b"\x00down"
        raw = await self.cache._safely(lambda: self.cache.redis.get(self.cache.prefix + self.VERSION_KEY), down)
        if raw == down:
            return None
        return raw.decode() if raw is not None else "0"

    async def bump(self) -> None:
        await self.cache.incr(self.VERSION_KEY)

    async def get(self, key: str) -> list | None:
        raw = await self.cache.get(key)
        return json.loads(raw) if raw is not None else None

    async def put(self, key: str, value: list) -> None:
        """Store in the background: the caller's answer never waits for Redis."""
        task = asyncio.create_task(self.cache.set(key, json.dumps(value).encode(), self.ttl_s))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
