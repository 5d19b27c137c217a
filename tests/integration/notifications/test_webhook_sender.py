"""The webhook sender against real HTTP and HTTPS servers on loopback: a name that resolves inside
the network is refused when the webhook is sent (not only a URL written as an address), the request
goes to the address that was checked with the URL's host in the Host header and TLS name, and each
kind of answer gets the outcome the retry policy expects."""

from __future__ import annotations

import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme
from sender_it_support import note

from notifications.adapters.webhook import SIGNATURE_HEADER, HttpxWebhookSender, verify_signature
from notifications.domain.model import Channel

SECRET = "a-webhook-secret-of-some-length"


class Receiver(BaseHTTPRequestHandler):
    """Answers by path: /ok 204, /gone 404, /busy 429, /moved 302, /slow after 3 s, else 500."""

    received: list[tuple[str, dict, bytes]]

    def do_POST(self):  # noqa: N802 (http.server hook)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, dict(self.headers), body))
        if self.path == "/slow":
            time.sleep(3)
        status = {"/ok": 204, "/gone": 404, "/busy": 429, "/moved": 302}.get(self.path, 500)
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "http://127.0.0.1:9/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class KeepAliveReceiver(Receiver):
    """HTTP/1.1 with kept connections; counts the connections it accepted."""

    protocol_version = "HTTP/1.1"
    connections: list[str]

    def setup(self):
        super().setup()
        self.connections.append(self.client_address)


def serve(tls: ssl.SSLContext | None = None, kind: type[Receiver] = Receiver):
    handler = type("ReceiverOfTest", (kind,), {"received": [], "connections": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.connections = handler.connections
    return server, handler.received


@pytest.fixture
def receiver():
    server, received = serve()
    yield server.server_address[1], received
    server.shutdown()


async def send(url: str, private_targets: bool = True, **options):
    sender = HttpxWebhookSender(timeout_s=1.0, private_targets=private_targets, **options)
    try:
        return await sender.send(note(url, Channel.WEBHOOK), SECRET)
    finally:
        await sender.aclose()


async def test_a_name_that_resolves_to_loopback_is_refused_when_sent_and_nothing_is_posted(receiver):
    port, received = receiver
    result = await send(f"http://localhost:{port}/ok", private_targets=False)
    assert (result.ok, result.reason, result.permanent) == (False, "webhook_target_forbidden", True)
    assert received == []


async def test_the_request_goes_to_the_checked_address_with_the_urls_host_and_a_signature(receiver):
    port, received = receiver
    result = await send(f"http://localhost:{port}/ok")
    assert result.ok
    [(path, headers, body)] = received
    assert path == "/ok" and headers["Host"] == f"localhost:{port}"
    assert verify_signature(SECRET, body, headers[SIGNATURE_HEADER])


async def test_https_is_verified_against_the_urls_host_though_the_connection_goes_to_the_address(tmp_path):
    authority = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(server_tls)
    server, received = serve(server_tls)
    port = server.server_address[1]
    try:
        trusting = ssl.create_default_context()
        authority.configure_trust(trusting)
        assert (await send(f"https://localhost:{port}/ok", verify=trusting)).ok
        assert received[0][1]["Host"] == f"localhost:{port}"
        # Without the URL's name as the TLS name, the address alone would not match the
        # certificate: a name the certificate does not carry is refused, and nothing is posted.
        other = await send(f"https://127.0.0.1:{port}/ok", verify=trusting)
        assert (other.ok, other.reason) == (False, "webhook_unreachable")
        assert len(received) == 1
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("path", "reason", "permanent"),
    [
        ("/gone", "webhook_rejected_404", True),
        ("/busy", "webhook_http_429", False),  # slow down, then retried
        ("/moved", "webhook_http_302", False),  # never followed: it could point inside
        ("/broken", "webhook_http_500", False),
        ("/slow", "webhook_timeout", False),
    ],
)
async def test_each_answer_gets_its_outcome(receiver, path, reason, permanent):
    port, received = receiver
    result = await send(f"http://127.0.0.1:{port}{path}")
    assert (result.ok, result.reason, result.permanent) == (False, reason, permanent)
    assert [p for p, _, _ in received] == [path]


async def test_a_name_that_does_not_resolve_is_retried_later():
    result = await send("https://no-such-host.invalid/hooks")
    assert (result.ok, result.reason, result.permanent) == (False, "webhook_unreachable", False)


async def test_connections_are_kept_per_host_name_and_never_shared_between_names():
    authority = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost", "127.0.0.1").configure_cert(server_tls)
    server, received = serve(server_tls, KeepAliveReceiver)
    port = server.server_address[1]
    trusting = ssl.create_default_context()
    authority.configure_trust(trusting)
    sender = HttpxWebhookSender(timeout_s=5.0, private_targets=True, verify=trusting, max_hosts=1)
    try:
        by_name = f"https://localhost:{port}/ok"
        for _ in range(3):
            assert (await sender.send(note(by_name, Channel.WEBHOOK), SECRET)).ok
        assert len(server.connections) == 1  # one TLS handshake for three webhooks
        # The same address under another name: a connection of its own, with its own Host.
        assert (await sender.send(note(f"https://127.0.0.1:{port}/ok", Channel.WEBHOOK), SECRET)).ok
        assert len(server.connections) == 2
        assert [h["Host"] for _, h, _ in received] == [f"localhost:{port}"] * 3 + [f"127.0.0.1:{port}"]
        # Past max_hosts the least recently used name's connections were closed: a new one.
        assert (await sender.send(note(by_name, Channel.WEBHOOK), SECRET)).ok
        assert len(server.connections) == 3
    finally:
        await sender.aclose()
        server.shutdown()
