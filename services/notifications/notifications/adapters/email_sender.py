"""E-mail over SMTP with the standard library, run in a worker thread so the event loop never
blocks on the network. Refusals of the message (5xx) are permanent; everything else is retried."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
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


class SmtpEmailSender:
    def __init__(self, config: SmtpConfig):
        self.config = config

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

    def _send_blocking(self, message: EmailMessage) -> None:
        c = self.config
        with smtplib.SMTP(c.host, c.port, timeout=c.timeout_s) as smtp:
            if c.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if c.username:
                smtp.login(c.username, c.password)
            smtp.send_message(message)

    async def send(self, note: Notification, secret: str = "") -> DeliveryResult:
        try:
            message = self.build_message(note)
        except (ValueError, TypeError):
            return DeliveryResult(False, "invalid_email_address", permanent=True)
        try:
            await asyncio.to_thread(self._send_blocking, message)
        except smtplib.SMTPRecipientsRefused:
            return DeliveryResult(False, "smtp_recipient_refused", permanent=True)
        except smtplib.SMTPAuthenticationError:
            return DeliveryResult(False, "smtp_authentication_failed")
        except smtplib.SMTPResponseException as error:
            permanent = 500 <= error.smtp_code < 600
            return DeliveryResult(False, "smtp_rejected" if permanent else "smtp_temporary_failure", permanent)
        except (smtplib.SMTPException, OSError):
            return DeliveryResult(False, "smtp_unavailable")
        return DeliveryResult(True)
