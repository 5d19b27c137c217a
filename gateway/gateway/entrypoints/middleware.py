"""The edge of every request (pure ASGI): a deadline for the whole request, a body size cap (413),
rate limits per user and per IP (429 + Retry-After), and replay of POST responses for a repeated
Idempotency-Key."""

from __future__ import annotations

import hashlib
import logging
import time

from gateway.adapters.idempotency import StoredResponse
from gateway.entrypoints.problems import PROBLEM_JSON, problem_body
from kit.context import current_deadline
from kit.errors import ReservaError

log = logging.getLogger("reserva.gateway.http")
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class BodyTooLarge(Exception):
    pass


async def _send_problem(send, status: int, code: str, detail: str, headers: dict | None = None) -> None:
    import json

    body = json.dumps(problem_body(status, code, detail)).encode()
    raw_headers = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class EdgeMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        gateway = scope["app"].state.gateway
        settings = gateway.settings
        current_deadline.set(time.monotonic() + settings.request_deadline_s)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]

        body = b""
        if method in _BODY_METHODS:
            try:
                body = await self._read_body(receive, headers, settings.max_body_bytes)
            except BodyTooLarge:
                return await _send_problem(
                    send, 413, "PAYLOAD_TOO_LARGE", f"the request body exceeds {settings.max_body_bytes} bytes"
                )

        user_id = self._user_of(gateway, headers)
        scope.setdefault("state", {})["caller_id"] = user_id  # request.state.caller_id (security.request_id)
        client_ip = (scope.get("client") or ("unknown", 0))[0]
        for scope_name, identity in (("ip", client_ip), ("user", user_id)):
            if identity is None:
                continue
            retry_after = await gateway.limiter.hit(scope_name, identity)
            if retry_after is not None:
                return await _send_problem(
                    send, 429, "RATE_LIMITED", "too many requests; retry later", {"Retry-After": retry_after}
                )

        replay = self._replaying_receive(body, receive)
        key = headers.get("idempotency-key")
        if method == "POST" and key and len(key) <= 64:
            return await self._idempotent(gateway, scope, replay, send, f"{user_id or client_ip}:{key}", body)
        return await self.app(scope, replay, send)

    @staticmethod
    async def _read_body(receive, headers: dict, limit: int) -> bytes:
        declared = headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise BodyTooLarge()
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge()
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    @staticmethod
    def _replaying_receive(body: bytes, downstream):
        """The body already read, then the server's own receive: it waits for the real disconnect.
        (Answering "disconnected" at once made streamed responses stop after their first chunk.)"""
        sent = False

        async def receive():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await downstream()

        return receive

    @staticmethod
    def _user_of(gateway, headers: dict) -> str | None:
        authorization = headers.get("authorization", "")
        if not authorization.lower().startswith("bearer "):
            return None
        try:
            return gateway.tokens.decode(authorization[7:].strip()).user_id
        except ReservaError:
            return None

    async def _idempotent(self, gateway, scope, receive, send, key: str, body: bytes) -> None:
        fingerprint = hashlib.sha256(
            b"|".join([scope["method"].encode(), scope["path"].encode(), scope.get("query_string", b""), body])
        ).hexdigest()
        store_key = hashlib.sha256(key.encode()).hexdigest()
        stored = await gateway.idempotency.get(store_key)
        if stored is not None:
            if stored.fingerprint != fingerprint:
                return await _send_problem(
                    send, 422, "IDEMPOTENCY_KEY_REUSED", "this Idempotency-Key was used with another request"
                )
            headers = [(k.encode(), v.encode()) for k, v in stored.headers] + [(b"idempotent-replayed", b"true")]
            await send({"type": "http.response.start", "status": stored.status, "headers": headers})
            await send({"type": "http.response.body", "body": stored.body})
            return

        captured: dict = {"status": 0, "headers": [], "body": []}

        async def capture(message):
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in message["headers"]]
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        status = captured["status"]
        # Answers that depend on the moment (auth, limits, outages, "retry": a conflict or the same
        # request still in flight, which carry Retry-After) are not replayed.
        retry = any(name.lower() == "retry-after" for name, _ in captured["headers"])
        if status and status < 500 and status not in (401, 408, 429) and not retry:
            await gateway.idempotency.put(
                store_key, StoredResponse(fingerprint, status, captured["headers"], b"".join(captured["body"]))
            )
