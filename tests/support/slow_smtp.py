"""An SMTP server that keeps the message, then waits before it answers ``250``.

A worker killed in that wait has delivered the email but never learns it did: the
window in which "sent" and "recorded as sent" part ways, which the kill-loop tests aim
at. Everything else is the ``smtp`` fixture's :class:`~tests.support.smtp.Catcher`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.servers import free_port
from tests.support.smtp import Catcher, environment


@dataclass
class SlowCatcher(Catcher):
    """Records each message when its data arrives, answers ``delay`` seconds later."""

    delay: float = 0.5

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.messages.append(message)
        await asyncio.sleep(self.delay)
        return "250 Message accepted for delivery"


@contextmanager
def slow_smtp(delay: float) -> Iterator[tuple[SlowCatcher, dict[str, str]]]:
    """A slow SMTP server on a free loopback port, the service's settings pointed at it
    (in this process's environment, restored on exit); yields it and those settings."""
    catcher = SlowCatcher(delay=delay)
    port = free_port()
    controller = Controller(catcher, hostname="127.0.0.1", port=port)
    controller.start()
    settings = {
        "DUNNING_SMTP_HOST": "127.0.0.1",
        "DUNNING_SMTP_PORT": str(port),
        "DUNNING_EMAIL_FROM": "Acme Billing <billing@acme.example>",
        "DUNNING_SMTP_TIMEOUT_SECONDS": "10",
    }
    try:
        with environment(**settings):
            yield catcher, settings
    finally:
        controller.stop()
