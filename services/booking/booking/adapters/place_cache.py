"""Place summaries for booking lists, cached in Redis (correctness never depends on it)."""

from __future__ import annotations

import json

from kit.cache import Cache


class PlaceSummaryCache:
    def __init__(self, cache: Cache, ttl_s: int):
        self.cache, self.ttl_s = cache, ttl_s

    async def get_many(self, place_ids: list[str]) -> dict[str, dict]:
        ids = list(dict.fromkeys(place_ids))
        values = await self.cache.get_many(ids)
        return {pid: json.loads(v) for pid, v in zip(ids, values, strict=True) if v is not None}

    async def put_many(self, places: dict) -> None:
        for pid, place in places.items():
            summary = place if isinstance(place, dict) else {"title": place.title, "city": place.city}
            await self.cache.set(pid, json.dumps(summary).encode(), self.ttl_s)
