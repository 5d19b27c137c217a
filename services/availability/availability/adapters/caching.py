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

# Stores a place's entry ("<version>\n<JSON>") unless the key holds a newer version already: a
# reader that loaded a place just before an update must not put the old row back after the update
# marked the key. An entry without JSON (a marker) is only that version, read as a miss.
_PUT_IF_NOT_OLDER = """
local current = redis.call('GET', KEYS[1])
if current then
  local version = tonumber(string.match(current, '^(%d+)\\n'))
  if version and version > tonumber(ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""


class PlaceCache:
    def __init__(self, cache: Cache, ttl_s: int = 300):
        self.cache, self.ttl_s = cache, ttl_s

    @staticmethod
    def _encode(place: Place) -> bytes:
        values = place_values(place)
        values.update(id=place.id, create_time=place.create_time.isoformat(), update_time=place.update_time.isoformat())
        return f"{place.version}\n".encode() + json.dumps(values).encode()

    @staticmethod
    def _decode(raw: bytes) -> Place | None:
        _, _, body = raw.partition(b"\n")
        if not body:
            return None  # a marker of an update: a miss
        values = json.loads(body)
        values["create_time"] = datetime.fromisoformat(values["create_time"])
        values["update_time"] = datetime.fromisoformat(values["update_time"])
        return place_from_row(SimpleNamespace(**values))

    async def get_many(self, ids: list[str]) -> dict[str, Place]:
        found = {}
        for place_id, raw in zip(ids, await self.cache.get_many(ids), strict=True):
            place = self._decode(raw) if raw is not None else None
            if place is not None:
                found[place_id] = place
        return found

    async def put(self, places: list[Place]) -> None:
        for place in places:
            await self._put_if_not_older(place.id, place.version, self._encode(place))

    async def forget(self, place: Place) -> None:
        """After `place` changed: the key holds a marker of its version until it is read again, so
        an older copy a concurrent reader loaded cannot be put back."""
        await self._put_if_not_older(place.id, place.version, f"{place.version}\n".encode())

    async def _put_if_not_older(self, place_id: str, version: int, value: bytes) -> None:
        key = self.cache.prefix + place_id
        await self.cache._safely(lambda: self.cache.redis.eval(_PUT_IF_NOT_OLDER, 1, key, version, value, self.ttl_s))


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
