"""A slow processor holds no database connection: with Stripe answering in 2 s, many due
retries at once neither exhaust the connection pool nor stall event handling.

localstripe sits behind a loopback proxy that waits 2 s before each request; more
retries run at once than the pool has connections, while events are applied. Every
request to the processor notes how many pooled connections its own thread holds at that
moment: the rule is that it holds none, whatever the other threads are doing."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import stripe
from sqlalchemy import event as sa_event

from dunning import actions
from dunning.db import get_engine, session_scope
from dunning.events.reconcile import reconcile
from dunning.events.service import handle_event
from dunning.processors.stripe_adapter import StripeAdapter
from dunning.scheduler import sweeper
from tests.support import sandbox
from tests.support.cases import store
from tests.support.ledger import all_handled, rows, wait_until
from tests.support.stripe_events import event, fixture

DELAY = 2.0
RETRIES = 50  # due at once: five times the pool's 5 + 5 connections
EVENTS = 12


@pytest.fixture
def slow_stripe(processor: str) -> Iterator[str]:
    """A proxy to the sandbox that answers every request ``DELAY`` seconds late."""

    class Slow(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            time.sleep(DELAY)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            answer = httpx.request(
                self.command, processor + self.path, content=body, headers=headers, timeout=30
            )
            self.send_response(answer.status_code)
            for key in ("Content-Type", "Request-Id"):
                if key in answer.headers:
                    self.send_header(key, answer.headers[key])
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        do_GET = do_POST = do_DELETE = _forward

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def held_at_call(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """For each request to a processor, the connections its thread had checked out."""
    engine = get_engine()
    held: dict[int, int] = {}
    seen: list[int] = []
    lock = threading.Lock()

    def checkout(dbapi: object, record: object, proxy: object) -> None:
        with lock:
            held[threading.get_ident()] = held.get(threading.get_ident(), 0) + 1
        record.info["thread"] = threading.get_ident()  # type: ignore[attr-defined]

    def checkin(dbapi: object, record: object) -> None:
        thread = record.info.pop("thread", None)  # type: ignore[attr-defined]
        if thread is not None:
            with lock:
                held[thread] -= 1

    real = stripe.RequestsClient.request

    def request(self: stripe.RequestsClient, *args: object, **kwargs: object) -> object:
        with lock:
            seen.append(held.get(threading.get_ident(), 0))
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    sa_event.listen(engine, "checkout", checkout)
    sa_event.listen(engine, "checkin", checkin)
    monkeypatch.setattr(stripe.RequestsClient, "request", request)
    yield seen
    sa_event.remove(engine, "checkout", checkout)
    sa_event.remove(engine, "checkin", checkin)


def test_slow_processor_calls_hold_no_connection(
    processor: str,
    slow_stripe: str,
    clean_db: None,
    celery_worker: object,
    held_at_call: list[int],
) -> None:
    sdk = sandbox.client(processor)
    for _ in range(RETRIES):
        sandbox.subscribe(sdk, sandbox.FAILING_CARD)
    reconcile(StripeAdapter(sandbox.API_KEY, processor))
    wait_until(all_handled, timeout=60, what="the failed renewals applied")
    due = rows("SELECT id, due_at FROM scheduled_actions WHERE kind = 'retry_charge'")
    assert len(due) == RETRIES
    now: datetime = max(r["due_at"] for r in due)
    with session_scope() as session:
        claimed = sweeper.claim(session, now, 100)
    assert len(claimed) == RETRIES

    slow = StripeAdapter(sandbox.API_KEY, slow_stripe)
    started = time.perf_counter()
    with ThreadPoolExecutor(RETRIES) as pool:
        running = [pool.submit(actions.run_action, slow, a, d, now) for a, d in claimed]
        time.sleep(DELAY / 2)  # the retries are now waiting on the processor
        latencies = []
        for n in range(EVENTS):
            customer = fixture("customer", id=f"cus_busy_{n}", email=f"busy{n}@example.com")
            [pk] = store(event("customer.updated", customer, event_id=f"e_busy_{n}"))
            t = time.perf_counter()
            handle_event(pk)
            latencies.append(time.perf_counter() - t)
        outcomes = [f.result() for f in running]
    elapsed = time.perf_counter() - started
    assert outcomes.count("declined") == RETRIES, outcomes
    pool_status = get_engine().pool.status()
    print(
        f"\n{RETRIES} retries against a processor answering in {DELAY:.0f} s took "
        f"{elapsed:.1f} s; applying an event meanwhile: median "
        f"{statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms; "
        f"processor requests: {len(held_at_call)}; pool: {pool_status}"
    )
    assert len(held_at_call) >= RETRIES  # each retry asked the processor at least once
    assert set(held_at_call) == {0}, held_at_call  # ...holding no connection when it did
    assert statistics.median(latencies) < DELAY / 4  # events flow while retries wait
