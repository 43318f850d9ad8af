"""A real SMTP server in the test process (aiosmtpd on loopback) that records what it gets.

Failures are scripted per recipient: ``temp_fail["a@x"] = 2`` answers the next two
deliveries to that address with ``451`` (try again later); ``bounce.add("b@x")``
answers ``550`` (no such mailbox) for good.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.servers import free_port


@dataclass
class Catcher:
    """The handler: messages received, and scripted failures."""

    messages: list[EmailMessage] = field(default_factory=list)
    temp_fail: dict[str, int] = field(default_factory=dict)
    bounce: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    greetings: int = 0  # EHLO/HELO received: one per connection

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.lock:
            self.greetings += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.lock:
            if address in self.bounce:
                return "550 5.1.1 No such user here"
            if self.temp_fail.get(address, 0) > 0:
                self.temp_fail[address] -= 1
                return "451 4.3.0 Mailbox temporarily unavailable, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]

    def wait_for(self, count: int, timeout: float = 20) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"expected {count} emails, got {len(self.messages)}")


def parts(message: EmailMessage) -> tuple[str, str]:
    """(text, html) of a multipart/alternative email."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


@contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set ``DUNNING_*`` variables and reload settings; restore both on exit.

    Restored before the caller's later fixtures (a worker thread) stop, so no settings
    with these values stay cached for the next test."""
    from dunning.settings import get_settings

    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    get_settings.cache_clear()
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
        get_settings.cache_clear()


@contextmanager
def smtp_catcher() -> Iterator[Catcher]:
    """An SMTP server on a free loopback port, with the service's settings pointed at it
    (the ``smtp`` fixture)."""
    catcher = Catcher()
    port = free_port()
    controller = Controller(catcher, hostname="127.0.0.1", port=port)
    controller.start()
    settings = {
        "DUNNING_SMTP_HOST": "127.0.0.1",
        "DUNNING_SMTP_PORT": str(port),
        "DUNNING_EMAIL_FROM": "Acme Billing <billing@acme.example>",
        "DUNNING_SMTP_TIMEOUT_SECONDS": "5",
    }
    try:
        with environment(**settings):
            yield catcher
    finally:
        controller.stop()
