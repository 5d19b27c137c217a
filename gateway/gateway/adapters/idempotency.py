"""Responses of POSTs replayed for a repeated Idempotency-Key (per caller), kept briefly in Redis.
The services are idempotent by request_id anyway; this also covers the gateway's own POSTs
(registration, user creation) and answers a retry without a round trip."""

from __future__ import annotations

import json
from dataclasses import dataclass

from kit.cache import Cache


@dataclass(frozen=True)
class StoredResponse:
    fingerprint: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class IdempotencyStore:
    def __init__(self, cache: Cache, ttl_s: int):
        self.cache, self.ttl_s = cache, ttl_s

    async def get(self, key: str) -> StoredResponse | None:
        raw = await self.cache.get(key)
        if raw is None:
            return None
        data = json.loads(raw)
        return StoredResponse(
            data["fingerprint"], data["status"], [tuple(h) for h in data["headers"]], data["body"].encode("latin-1")
        )

    async def put(self, key: str, response: StoredResponse) -> None:
        data = {
            "fingerprint": response.fingerprint,
            "status": response.status,
            "headers": response.headers,
            "body": response.body.decode("latin-1"),
        }
        await self.cache.set(key, json.dumps(data).encode(), self.ttl_s)
