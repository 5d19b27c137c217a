"""E-mail over SMTP with the standard library, run in a worker thread so the event loop never
blocks on the network. Refusals of this message (5xx to its recipient or its data) are permanent;
everything else is retried, also a relay's 5xx to the connection, EHLO, login or sender, which say
that the relay or our settings are wrong, not the message (every message would fail for good).

Connections are kept for the next message (a few, for a short while), as mail providers ask of bulk
senders: a connection per message costs a TCP handshake, EHLO, and with STARTTLS a TLS handshake and
a login, several times the message itself. A kept connection is asked a NOOP before it carries a
message; one the server has closed meanwhile is replaced by a new one then, before any of the
message is sent, so that a message is never sent twice because of it."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

from notifications.domain.model import DeliveryResult, Notification


@dataclass(frozen=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 8025
    starttls: bool = False
    username: str = ""
    password: str = ""
    timeout_s: float = 10.0
    sender: str = "Reserva <no-reply@reserva.local>"
    ca_file: str = ""  # PEM; empty: the system's trusted authorities


class SmtpEmailSender:
    def __init__(self, config: SmtpConfig, keep: int = 4, keep_for_s: float = 30.0):
        self.config = config
        self.keep, self.keep_for_s = keep, keep_for_s
        self._idle: list[tuple[smtplib.SMTP, float]] = []  # (connection, when it was last used)
        self._lock = threading.Lock()  # sends run in several worker threads at once

    def build_message(self, note: Notification) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.config.sender
        message["To"] = note.address
        message["Subject"] = note.subject
        message["Message-ID"] = make_msgid(domain="reserva.local")
        message["X-Reserva-Notification-Id"] = note.id
        message["X-Reserva-Event-Type"] = note.event_type
        message.set_content(note.body)
        if note.html:
            message.add_alternative(note.html, subtype="html")
        return message

    def _connect(self) -> smtplib.SMTP:
        c = self.config
        smtp = smtplib.SMTP(c.host, c.port, timeout=c.timeout_s)
        try:
            if c.starttls:
                # Verified (certificate and host name), never plaintext: a relay without STARTTLS
                # or with a certificate no trusted authority signed fails here, before any login.
                smtp.starttls(context=ssl.create_default_context(cafile=c.ca_file or None))
            if c.username:
                smtp.login(c.username, c.password)
        except BaseException:
            _close(smtp)
            raise
        return smtp

    def _kept(self) -> smtplib.SMTP | None:
        """A kept connection used within keep_for_s that still answers (the others are closed), or None."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                smtp, used = self._idle.pop()
            if time.monotonic() - used < self.keep_for_s and _answers(smtp):
                return smtp
            _close(smtp)

    def _keep(self, smtp: smtplib.SMTP) -> None:
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append((smtp, time.monotonic()))
                return
        _close(smtp)

    def _send_blocking(self, message: EmailMessage) -> None:
        smtp = self._kept() or self._connect()
        try:
            smtp.send_message(message)
        except BaseException:
            _close(smtp)
            raise
        self._keep(smtp)

    def close(self) -> None:
        """QUIT the kept connections (at shutdown)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for smtp, _ in idle:
            _close(smtp)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    async def send(self, note: Notification, secret: str = "") -> DeliveryResult:
        try:
            message = self.build_message(note)
        except (ValueError, TypeError):
            return DeliveryResult(False, "invalid_email_address", permanent=True)
        try:
            await asyncio.to_thread(self._send_blocking, message)
        except smtplib.SMTPRecipientsRefused as error:
            permanent = all(500 <= code < 600 for code, _ in error.recipients.values())
            return DeliveryResult(False, "smtp_recipient_refused", permanent)
        except smtplib.SMTPDataError as error:  # this message refused
            permanent = 500 <= error.smtp_code < 600
            return DeliveryResult(False, "smtp_rejected" if permanent else "smtp_temporary_failure", permanent)
        except smtplib.SMTPAuthenticationError:
            return DeliveryResult(False, "smtp_authentication_failed")
        except smtplib.SMTPSenderRefused:  # MAIL FROM: our account or settings (530: no login), not this message
            return DeliveryResult(False, "smtp_sender_refused")
        except (smtplib.SMTPConnectError, smtplib.SMTPHeloError):  # the relay refuses to serve us at all
            return DeliveryResult(False, "smtp_relay_refused")
        except smtplib.SMTPResponseException:
            return DeliveryResult(False, "smtp_temporary_failure")
        except (smtplib.SMTPException, OSError):
            return DeliveryResult(False, "smtp_unavailable")
        return DeliveryResult(True)


def _answers(smtp: smtplib.SMTP) -> bool:
    try:
        return smtp.noop()[0] == 250
    except (smtplib.SMTPException, OSError):
        return False


def _close(smtp: smtplib.SMTP) -> None:
    """QUIT politely, or just drop the socket when the connection is already broken."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
