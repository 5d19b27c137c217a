"""The e-mail sender keeps its SMTP connections for the next messages, against a real SMTP server
(aiosmtpd on loopback) that counts the connections opened to it: one connection for a run of
messages, a new one once a kept connection is too old or the server has closed it (found by a NOOP,
before the message is sent), and QUIT at shutdown. Nothing is lost or sent twice on the way."""

from __future__ import annotations

import asyncio

import pytest
from aiosmtpd.controller import Controller
from sender_it_support import CountingHandler, note

from notifications.adapters.email_sender import SmtpConfig, SmtpEmailSender
from notifications.adapters.smtp_sink import free_port


class Server:
    def __init__(self):
        self.handler, self.port = CountingHandler(), free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def restart(self) -> None:
        """Gone and back on the same port: every connection it had is closed."""
        self.controller.stop()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()


@pytest.fixture
def smtp_server():
    server = Server()
    yield server, server.handler, server.port
    server.controller.stop()


async def test_a_run_of_messages_shares_one_connection_and_shutdown_quits_it(smtp_server):
    _, handler, port = smtp_server
    sender = SmtpEmailSender(SmtpConfig(port=port))
    for i in range(5):
        assert (await sender.send(note(f"a{i}@example.com"))).ok
    assert handler.recipients == [f"a{i}@example.com" for i in range(5)]
    assert handler.greetings == 1
    await sender.aclose()
    assert handler.quits == 1


async def test_concurrent_sends_each_get_a_connection_and_at_most_keep_stay_open(smtp_server):
    _, handler, port = smtp_server
    sender = SmtpEmailSender(SmtpConfig(port=port), keep=2)
    results = await asyncio.gather(*(sender.send(note(f"c{i}@example.com")) for i in range(8)))
    assert all(r.ok for r in results)
    assert sorted(handler.recipients) == sorted(f"c{i}@example.com" for i in range(8))
    opened = handler.greetings
    assert (await sender.send(note("after@example.com"))).ok
    assert handler.greetings == opened  # a kept one carried it
    await sender.aclose()
    assert handler.quits == opened  # the unkept ones at once, the kept ones at shutdown


async def test_a_connection_the_server_closed_is_replaced_and_the_message_goes_once(smtp_server):
    server, handler, port = smtp_server
    sender = SmtpEmailSender(SmtpConfig(port=port))
    assert (await sender.send(note("before@example.com"))).ok
    server.restart()  # the kept connection is dead
    assert (await sender.send(note("after@example.com"))).ok
    assert handler.recipients == ["before@example.com", "after@example.com"]
    assert handler.greetings == 2
    await sender.aclose()


async def test_a_connection_kept_too_long_is_not_used_again(smtp_server):
    _, handler, port = smtp_server
    sender = SmtpEmailSender(SmtpConfig(port=port), keep_for_s=0.0)
    for i in range(3):
        assert (await sender.send(note(f"o{i}@example.com"))).ok
    assert handler.greetings == 3 and handler.quits == 2  # each old one closed when the next came
    await sender.aclose()
