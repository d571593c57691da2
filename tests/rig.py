"""Real local servers for tests: an in-process SMTP server (aiosmtpd) that records messages
and can refuse recipients, like a mail server bouncing an address."""

from __future__ import annotations

import asyncio
import email
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session


@dataclass
class SmtpSink:
    messages: list[EmailMessage] = field(default_factory=list)
    connections: int = 0
    bounce: set[str] = field(default_factory=set)  # recipients answered with 550
    refuse_every_recipient: str | None = None  # e.g. "554 5.7.1 Relay access denied"
    answer_recipient: dict[str, str] = field(default_factory=dict)  # address -> RCPT reply
    slow_recipient: dict[str, float] = field(default_factory=dict)  # address -> RCPT delay
    delay_seconds: float = 0.0  # a slow server: how long DATA takes to answer
    # A server that drops a connection when it has carried this many messages (0: never),
    # without a word, as relays capping messages per connection do.
    messages_per_connection: int = 0

    def start(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    async def handle_EHLO(
        self, server: Any, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.messages_per_connection and getattr(session, "carried", 0) >= (
            self.messages_per_connection
        ):
            server.transport.close()
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.slow_recipient:
            await asyncio.sleep(self.slow_recipient[address])
        if self.refuse_every_recipient:
            return self.refuse_every_recipient
        if address in self.answer_recipient:
            return self.answer_recipient[address]
        if address in self.bounce:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        self.messages.append(email.message_from_bytes(content, policy=default))  # type: ignore[arg-type]
        session.carried = getattr(session, "carried", 0) + 1  # type: ignore[attr-defined]
        if self.delay_seconds:  # taken, answered late: a client that gave up cannot tell
            await asyncio.sleep(self.delay_seconds)
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class WebServer:
    """`yunying web`'s app served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        self.port = port
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> WebServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("yunying web did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


def wait_until(check: Any, what: str, seconds: float = 120) -> Any:
    """Poll `check` until it returns something truthy (an HTTP error counts as not yet)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            result = check()
        except httpx.HTTPError:
            result = None
        if result:
            return result
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")
