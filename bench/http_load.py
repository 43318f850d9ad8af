"""A lean load generator for webhook benchmarks: pre-built HTTP/1.1 requests written on
keep-alive connections, responses parsed by httptools, on uvloop.

The benchmarks run the sender on the two cores they measure, which a processor's
delivery fleet never shares with a real deployment. aiohttp's client spent about a
fifth of those cores (4.4 s of CPU in a 10 s ingest run, measured with psutil) on
sending; this one spends a fraction of that, so the figures are the service's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import cast

import httptools
import uvloop

from dunning.events.routes import WEBHOOK_PATH
from dunning.events.signature import sign


def webhook(host: str, body: bytes, secret: str) -> bytes:
    """One signed delivery of ``body``, ready to write (built before the clock starts)."""
    head = (
        f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
        f"Content-Type: application/json\r\nStripe-Signature: {sign(body, secret)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Result:
    sent: int = 0
    accepted: int = 0  # answered 200
    latencies: list[float] = field(default_factory=list)


class _Connection(asyncio.Protocol):
    """Sends one request, waits for its answer, sends the next, until the deadline."""

    def __init__(self, pending: Iterator[bytes], deadline: float, result: Result) -> None:
        self._pending = pending
        self._deadline = deadline
        self._result = result
        self._parser = httptools.HttpResponseParser(self)
        self._started = 0.0
        self._transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._send_next()

    def data_received(self, data: bytes) -> None:
        self._parser.feed_data(data)

    def on_message_complete(self) -> None:  # httptools callback
        self._result.latencies.append(time.perf_counter() - self._started)
        self._result.sent += 1
        self._result.accepted += self._parser.get_status_code() == 200
        self._send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def _send_next(self) -> None:
        assert self._transport is not None
        payload = next(self._pending, None) if time.perf_counter() < self._deadline else None
        if payload is None:
            self._transport.close()
            return
        self._started = time.perf_counter()
        self._transport.write(payload)


def post(
    host: str, port: int, requests: Iterable[bytes], seconds: float, connections: int
) -> Result:
    """Send ``requests`` from ``connections`` keep-alive connections for ``seconds``
    (``float("inf")``: until every request is answered)."""

    async def run() -> Result:
        loop = asyncio.get_running_loop()
        result = Result()
        pending = iter(requests)
        deadline = time.perf_counter() + seconds
        opened = [
            await loop.create_connection(lambda: _Connection(pending, deadline, result), host, port)
            for _ in range(connections)
        ]
        # A lost answer is an error, not a hang (a run until the requests end has no limit).
        async with asyncio.timeout(seconds + 30 if seconds != float("inf") else None):
            await asyncio.gather(*(protocol.closed for _, protocol in opened))
        return result

    return uvloop.run(run())
