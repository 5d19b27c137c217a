"""The e-mail sender with STARTTLS and a login, as a mail provider asks for, against a real SMTP
server (aiosmtpd on loopback) that offers STARTTLS with a certificate of a test authority (trustme)
and accepts one user: the messages go encrypted after one handshake and one login per kept
connection; a certificate no trusted authority signed, a relay without STARTTLS or a wrong password
end the send before any message (or password) is sent, with a reason the retry policy understands."""

from __future__ import annotations

import ssl

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sender_it_support import CountingHandler, note

from notifications.adapters.email_sender import SmtpConfig, SmtpEmailSender
from notifications.adapters.smtp_sink import free_port

USER, PASSWORD = "reserva", "s3cret-relay-password"


class TlsHandler(CountingHandler):
    """Also remembers whether each message came over TLS."""

    def __init__(self):
        super().__init__()
        self.encrypted: list[bool] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd hook)
        self.encrypted.append(session.ssl is not None)
        return await super().handle_DATA(server, session, envelope)


class Relay:
    """An SMTP relay on a free loopback port; with a certificate it requires STARTTLS and a login."""

    def __init__(self, certificate: trustme.LeafCert | None):
        self.handler, self.port, self.logins = TlsHandler(), free_port(), []
        options = {}
        if certificate is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            certificate.configure_cert(context)
            options = {
                "tls_context": context,
                "require_starttls": True,
                "auth_required": True,
                "authenticator": self.authenticate,
            }
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **options)
        self.controller.start()

    def authenticate(self, server, session, envelope, mechanism, auth_data):  # noqa: ARG002 (aiosmtpd hook)
        assert isinstance(auth_data, LoginPassword)
        self.logins.append(auth_data.login.decode())
        ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
        return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535 on a failure


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(authority, tmp_path) -> str:
    path = tmp_path / "relay-ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def relay(authority):
    server = Relay(authority.issue_cert("127.0.0.1"))
    yield server
    server.controller.stop()


@pytest.fixture
def plain_relay():
    server = Relay(None)
    yield server
    server.controller.stop()


def tls_config(port: int, ca_file: str = "", password: str = PASSWORD) -> SmtpConfig:
    return SmtpConfig(port=port, starttls=True, username=USER, password=password, ca_file=ca_file)


async def test_messages_go_encrypted_with_one_handshake_and_login_per_kept_connection(relay, ca_file):
    sender = SmtpEmailSender(tls_config(relay.port, ca_file))
    for i in range(4):
        assert (await sender.send(note(f"t{i}@example.com"))).ok
    assert relay.handler.recipients == [f"t{i}@example.com" for i in range(4)]
    assert relay.handler.encrypted == [True] * 4
    assert relay.logins == [USER]  # one connection carried all four
    await sender.aclose()
    assert relay.handler.quits == 1


async def test_a_connection_per_message_logs_in_every_time(relay, ca_file):
    """keep=0, the sender before it kept connections: the cost the kept connections save."""
    sender = SmtpEmailSender(tls_config(relay.port, ca_file), keep=0)
    for i in range(3):
        assert (await sender.send(note(f"n{i}@example.com"))).ok
    assert relay.logins == [USER] * 3
    assert relay.handler.quits == 3


async def test_a_certificate_no_trusted_authority_signed_ends_the_send_before_the_login(relay):
    sender = SmtpEmailSender(tls_config(relay.port))  # the system's authorities: not the test one
    result = await sender.send(note("x@example.com"))
    assert (result.ok, result.reason, result.permanent) == (False, "smtp_unavailable", False)
    assert relay.logins == [] and relay.handler.recipients == []


async def test_a_relay_without_starttls_gets_neither_the_password_nor_the_message(plain_relay, ca_file):
    sender = SmtpEmailSender(tls_config(plain_relay.port, ca_file))
    result = await sender.send(note("x@example.com"))
    assert (result.ok, result.reason) == (False, "smtp_unavailable")
    assert plain_relay.logins == [] and plain_relay.handler.recipients == []


async def test_a_wrong_password_is_an_authentication_failure_and_nothing_is_sent(relay, ca_file):
    sender = SmtpEmailSender(tls_config(relay.port, ca_file, password="wrong"))
    result = await sender.send(note("x@example.com"))
    assert (result.ok, result.reason) == (False, "smtp_authentication_failed")
    assert set(relay.logins) == {USER} and relay.handler.recipients == []  # smtplib tries PLAIN, then LOGIN


async def test_the_service_settings_reach_the_sender(relay, ca_file, monkeypatch):
    """NOTIFICATIONS_SMTP_* as an operator sets them: the service's e-mail sender logs in over
    STARTTLS, trusting the named authority."""
    from notifications.bootstrap import build_services
    from notifications.config import NotificationsSettings
    from notifications.domain.model import Channel

    for name, value in {
        "SMTP_PORT": str(relay.port),
        "SMTP_STARTTLS": "true",
        "SMTP_USERNAME": USER,
        "SMTP_PASSWORD": PASSWORD,
        "SMTP_CA_FILE": ca_file,
        "MAIL_FROM": "Reserva <bookings@reserva.example>",
    }.items():
        monkeypatch.setenv(f"NOTIFICATIONS_{name}", value)
    services, _, webhooks = build_services(NotificationsSettings(), runtime=None)  # the runtime serves the uow only
    sender = services.senders[Channel.EMAIL]
    try:
        assert (await sender.send(note("s@example.com"))).ok
        assert relay.handler.recipients == ["s@example.com"] and relay.handler.encrypted == [True]
        assert relay.logins == [USER]
    finally:
        await sender.aclose()
        await webhooks.aclose()
