"""A local SMTP server that accepts every message and keeps it in memory (and optionally appends it
to an mbox file): the mail catcher of `reserva up` and of the tests. Run standalone with
`python -m notifications.adapters.smtp_sink [--port 8025] [--mbox PATH]`."""

from __future__ import annotations

import argparse
import mailbox
import socket
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class _Collector:
    def __init__(self, sink: SmtpSink):
        self.sink = sink

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd hook name)
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.sink._store(message, envelope.content)
        return "250 Message accepted for delivery"


class SmtpSink:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, mbox_path: str | None = None):
        self.host, self.port = host, port or free_port(host)
        self.mbox_path = mbox_path
        self.messages: list[EmailMessage] = []
        # time.perf_counter() at each message's arrival, parallel to `messages` (for benchmarks).
        self.received_at: list[float] = []
        self._changed = threading.Condition()
        # One mailbox kept open: reopening scans the whole file on every append.
        self._box = mailbox.mbox(mbox_path) if mbox_path else None
        self.controller = Controller(_Collector(self), hostname=host, port=self.port)

    def _store(self, message: EmailMessage, raw: bytes) -> None:
        if self._box is not None:
            # Arrival time (epoch seconds) for readers in other processes, e.g. the benchmark.
            self._box.add(b"X-Sink-Received-At: %.6f\r\n" % time.time() + raw)
            self._box.flush()
        with self._changed:
            self.received_at.append(time.perf_counter())
            self.messages.append(message)
            self._changed.notify_all()

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
        if self._box is not None:
            self._box.close()

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in list(self.messages) if address in str(m["To"])]

    def wait_for(self, predicate, timeout_s: float = 10.0) -> bool:
        """Blocks (use from a thread) until predicate(messages) holds or the timeout passes."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not predicate(list(self.messages)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True


def start_smtp_sink(host: str = "127.0.0.1", port: int = 0, mbox_path: str | None = None) -> SmtpSink:
    """Starts an aiosmtpd Controller in its own thread; port 0 picks a free port."""
    return SmtpSink(host, port, mbox_path).start()


def main() -> None:
    parser = argparse.ArgumentParser(description="Local SMTP sink for Reserva")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--mbox", default=None)
    args = parser.parse_args()
    sink = start_smtp_sink(args.host, args.port, args.mbox)
    print(f"READY {sink.port}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        sink.stop()


if __name__ == "__main__":
    main()
