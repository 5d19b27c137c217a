"""The edge middleware reads a request's body before the app does and replays it; after the body,
the app must see the server's own messages (a real disconnect only when the client has gone), or
streamed responses stop after their first chunk."""

import asyncio

from gateway.entrypoints.middleware import EdgeMiddleware


def test_the_replayed_body_comes_first_then_the_servers_own_messages():
    server_messages = [{"type": "http.disconnect", "from": "server"}]

    async def server_receive():
        await asyncio.sleep(0)
        return server_messages.pop()

    async def scenario():
        receive = EdgeMiddleware._replaying_receive(b'{"a": 1}', server_receive)
        first = await receive()
        second = await receive()
        return first, second

    first, second = asyncio.run(scenario())
    assert first == {"type": "http.request", "body": b'{"a": 1}', "more_body": False}
    assert second == {"type": "http.disconnect", "from": "server"}
