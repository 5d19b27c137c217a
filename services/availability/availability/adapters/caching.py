"""Redis caches. Correctness never depends on them: every method degrades to "miss" when Redis is
down (kit.cache.Cache never raises). Search pages carry the version that every calendar or place
change bumps, so a stale page is simply never read again (and expires by TTL)."""

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
        return f"{place.version}\n".encode() + json.dumps(values).encode()

    @staticmethod
    def _decode(raw: bytes) -> Place:
        _, _, body = raw.partition(b"\n")
        values = json.loads(body)
        values["create_time"] = datetime.fromisoformat(values["create_time"])
        values["update_time"] = datetime.fromisoformat(values["update_time"])
        return place_from_row(SimpleNamespace(**values))

    async def get_many(self, ids: list[str]) -> dict[str, Place]:
        raw = await self.cache.get_many(ids, usable=lambda value: not value.endswith(b"\n"))
        return {place_id: self._decode(value) for place_id, value in zip(ids, raw, strict=True) if value is not None}

    async def put(self, places: list[Place]) -> None:
        for place in places:
            await self.cache.set_unless_newer(place.id, place.version, self._encode(place), self.ttl_s)

    async def forget(self, place: Place) -> None:
        """After `place` changed: the key holds a marker of its version (the version and a newline,
        read as a miss) until it is read again, so an older copy a concurrent reader loaded cannot be put
        back (kit.cache.Cache.set_unless_newer)."""
        await self.cache.set_unless_newer(place.id, place.version, f"{place.version}\n".encode(), self.ttl_s)


class SearchCache:
    """Search pages under a key of the query; each stored page is led by the calendar version it
    was computed at ("<version>\\n<JSON page>"), and a lookup reads the current version and the page
    in one round trip (MGET): a page of an older version is a miss."""

    VERSION_KEY = "version"

    def __init__(self, cache: Cache, ttl_s: int = 60):
        self.cache, self.ttl_s = cache, ttl_s
        self._pending: set[asyncio.Task] = set()
        self._bump_waiters: asyncio.Future | None = None
        self._bumper: asyncio.Task | None = None

    async def lookup(self, key: str) -> tuple[str | None, list | None]:
        """(the current calendar version, the page stored for it under `key` or None). The version
        is None when Redis is unreachable: then nothing is cached."""
        down = [b"\x00down"]
        raw = await self.cache._safely(
            lambda: self.cache.redis.mget([self.cache.prefix + self.VERSION_KEY, self.cache.prefix + key]), down
        )
        if raw is down:
            return None, None
        version = raw[0].decode() if raw[0] is not None else "0"
        if raw[1] is not None:
            # The version leads the stored value: a page of an older version is not decoded at all.
            stored_version, _, page = raw[1].partition(b"\n")
            if stored_version.decode() == version:
                self.cache._count("hit")
                return version, json.loads(page)
        self.cache._count("miss")
        return version, None

    async def bump(self) -> None:
        """Advance the calendar version after a committed change; returns once an INCR sent after
        this call has been answered. Concurrent callers share that INCR (one round trip for every
        change committed before it was sent), so a busy writer path does not pay one each."""
        if self._bump_waiters is None:
            self._bump_waiters = asyncio.get_running_loop().create_future()
        waiters = self._bump_waiters
        if self._bumper is None or self._bumper.done():
            self._bumper = asyncio.create_task(self._send_bumps())
        await asyncio.shield(waiters)

    async def _send_bumps(self) -> None:
        while self._bump_waiters is not None:
            # Whoever asked before this point is covered by the INCR sent now; later callers wait
            # for the next one.
            waiters, self._bump_waiters = self._bump_waiters, None
            try:
                await self.cache.incr(self.VERSION_KEY)  # never raises: Redis down is a no-op
            finally:
                if not waiters.done():
                    waiters.set_result(None)

    def store(self, key: str, version: str, value: list) -> None:
        """Store in the background: the caller's answer waits neither for the encoding nor Redis."""
        task = asyncio.create_task(self._store(key, version, value))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _store(self, key: str, version: str, value: list) -> None:
        await self.cache.set(key, f"{version}\n{json.dumps(value)}".encode(), self.ttl_s)
