"""Renewal-day burst: many failed renewals at once, end to end on this machine.

Starts the real web process, one worker with 2 processes, beat, a private Redis, a
fresh Postgres database and an SMTP sink (aiosmtpd, in this process). Each failed
renewal is its ``invoice.payment_failed``, ``charge.failed`` and
``customer.subscription.updated``; the events are shuffled, 10 % are delivered twice,
signed with the Stripe scheme and posted from 32 connections. The customers and
their cards are seeded first, as customer and payment-method events would have left
them (a case without a known card would hold its first email for the card fetch).

Prints the ingest rate, the apply rate, the time until every case is open with its
first actions planned, the largest queue depth, peak RSS per process, and then, at a
steady 200 events/s with email allowed all day, webhook -> first email p50/p95
(``--steady-seconds 0``: the burst alone, no email drain and no steady run).

    .venv/bin/python bench/burst.py [--failures 100000] [--steady-seconds 30]
                                    [--steady-rate 200] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import psycopg
import redis
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import http_load  # noqa: E402
from dunning.events.signature import sign  # noqa: E402
from dunning.migrate import upgrade  # noqa: E402
from tests.support.servers import (  # noqa: E402
    ThrowawayRedis,
    free_port,
    fresh_database,
    postgres_server_url,
    wait_for_port,
)

SECRET = "whsec_burst"
DAY = 86_400


def renewal_events(n: int, run: str, created: int) -> list[dict[str, Any]]:
    """The three events of one failed renewal."""
    cus, sub, inv, ch = f"cus_{run}{n}", f"sub_{run}{n}", f"in_{run}{n}", f"ch_{run}{n}"
    invoice = {
        "id": inv,
        "object": "invoice",
        "customer": cus,
        "status": "open",
        "attempt_count": 1,
        "amount_due": 4900,
        "currency": "usd",
        "billing_reason": "subscription_cycle",
        "charge": ch,
        "created": created - 3600,
        "parent": {"subscription_details": {"subscription": sub}},
    }
    charge = {
        "id": ch,
        "object": "charge",
        "customer": cus,
        "invoice": inv,
        "status": "failed",
        "paid": False,
        "amount": 4900,
        "currency": "usd",
        "created": created,
        "failure_code": "card_declined",
        "outcome": {"type": "issuer_declined", "reason": "insufficient_funds"},
    }
    subscription = {
        "id": sub,
        "object": "subscription",
        "customer": cus,
        "status": "past_due",
        "start_date": created - 90 * DAY,
        "created": created - 90 * DAY,
        "items": {
            "data": [
                {
                    "quantity": 1,
                    "current_period_end": created + 30 * DAY,
                    "price": {
                        "id": "price_burst",
                        "unit_amount": 4900,
                        "currency": "usd",
                        "recurring": {"interval": "month", "interval_count": 1},
                    },
                }
            ]
        },
    }
    kinds = (
        ("invoice.payment_failed", invoice),
        ("charge.failed", charge),
        ("customer.subscription.updated", subscription),
    )
    return [
        {
            "id": f"evt_{run}{n}_{k}",
            "object": "event",
            "type": kind,
            "created": created,
            "livemode": False,
            "data": {"object": obj},
        }
        for k, (kind, obj) in enumerate(kinds)
    ]


def signed(event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    return body, {"Stripe-Signature": sign(body, SECRET), "Content-Type": "application/json"}


class Sink:
    """SMTP handler: the time each recipient's first email arrived."""

    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.time()
        self.count += 1
        for rcpt in envelope.rcpt_tos:
            self.first.setdefault(rcpt, now)
        return "250 OK"


def post_all(port: int, requests: list[bytes], connections: int) -> tuple[int, float]:
    """Post as fast as the service answers; the count of non-200 answers and seconds."""
    start = time.perf_counter()
    result = http_load.post("127.0.0.1", port, requests, float("inf"), connections)
    if result.sent != len(requests):
        raise RuntimeError(f"{len(requests) - result.sent} requests were never answered")
    return result.sent - result.accepted, time.perf_counter() - start


async def post_paced(
    url: str, batches: list[tuple[str, list[tuple[bytes, dict[str, str]]]]], rate: float
) -> tuple[dict[str, float], list[float]]:
    """Post each renewal's events at ``rate`` events/s; when each renewal was first
    posted, and how long each post took to be answered."""
    posted: dict[str, float] = {}
    answered: list[float] = []
    start = time.perf_counter()
    sent = 0
    async with aiohttp.ClientSession() as http:
        tasks = []

        async def one(key: str, body: bytes, headers: dict[str, str]) -> None:
            sent_at = time.time()
            posted.setdefault(key, sent_at)
            async with http.post(url, data=body, headers=headers) as resp:
                await resp.read()
            answered.append(time.time() - sent_at)

        for key, requests in batches:
            for body, headers in requests:
                delay = start + sent / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(key, body, headers)))
                sent += 1
        await asyncio.gather(*tasks)
    return posted, answered


def watch(
    procs: dict[str, psutil.Process],
    peaks: dict[str, int],
    queue: redis.Redis,
    depth: list[int],
    stop: threading.Event,
) -> None:
    """Sample every process's RSS (each worker child on its own) and the queue depth."""
    while not stop.is_set():
        for name, proc in procs.items():
            try:
                family = [proc, *proc.children(recursive=True)]
                for i, p in enumerate(family):
                    key = name if i == 0 else f"{name} child {i}"
                    peaks[key] = max(peaks.get(key, 0), p.memory_info().rss)
            except psutil.Error:
                continue
        with contextlib.suppress(redis.RedisError):
            depth[0] = max(depth[0], sum(int(queue.llen(q)) for q in ("celery", "events")))  # type: ignore[arg-type]
        time.sleep(0.2)


def scalar(conn: psycopg.Connection[Any], sql: str) -> Any:
    row = conn.execute(sql).fetchone()
    assert row is not None
    return row[0]


def wait(conn: psycopg.Connection[Any], sql: str, want: int, timeout: float) -> float:
    """Seconds until ``sql`` counts ``want`` (or the timeout)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if scalar(conn, sql) == want:
            break
        time.sleep(0.2)
    return time.perf_counter() - start


# Where the steady run's first-email latency goes (means, seconds): from the webhook of
# the invoice's failure to the email's action being planned, from planned to due, and
# from due to done (claimed, run and sent).
STEADY_LAGS = (
    "SELECT coalesce(avg(extract(epoch FROM a.created_at - e.received_at)), 0),"
    " coalesce(avg(extract(epoch FROM a.due_at - a.created_at)), 0),"
    " coalesce(avg(extract(epoch FROM a.completed_at - a.due_at)), 0)"
    " FROM scheduled_actions a JOIN dunning_cases c ON c.id = a.case_id"
    " JOIN processor_events e ON e.object_id = c.invoice_id"
    " AND e.type = 'invoice.payment_failed'"
    " WHERE a.kind = 'send_email' AND a.status = 'done' AND c.customer_id LIKE 'cus_s%'"
)
UNHANDLED = "SELECT count(*) FROM processor_events WHERE handled_at IS NULL"
PLANNED = (
    "SELECT count(*) FROM dunning_cases c WHERE c.state = 'open' AND EXISTS"
    " (SELECT 1 FROM scheduled_actions a WHERE a.case_id = c.id)"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--failures", type=int, default=100_000)
    parser.add_argument("--steady-seconds", type=float, default=30)
    parser.add_argument("--steady-rate", type=float, default=200, help="events/s")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="dunning-burst-"))
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp))
    redis_server = ThrowawayRedis(tmp / "redis")
    redis_server.start()
    sink = Sink()
    smtp = Controller(sink, hostname="127.0.0.1", port=free_port())
    smtp.start()
    steady_n = int(args.steady_seconds * args.steady_rate / 3)
    created = int(time.time()) - 60
    with fresh_database(postgres_server_url(tmp / "pg")) as db_url:
        upgrade(db_url)
        total = args.failures + steady_n
        with psycopg.connect(db_url) as conn:  # customers and cards known before renewal
            for run in ("b", "s"):
                conn.execute(
                    "INSERT INTO customers (id, email, time_zone, default_payment_method_id)"
                    " SELECT 'cus_' || %s || n, 'c' || %s || n || '@example.com', 'UTC',"
                    " 'pm_' || %s || n FROM generate_series(0, %s - 1) n",
                    (run, run, run, total),
                )
                conn.execute(
                    "INSERT INTO payment_methods"
                    " (id, customer_id, brand, last4, exp_month, exp_year, fingerprint)"
                    " SELECT 'pm_' || %s || n, 'cus_' || %s || n, 'visa', '4242', 12, 2030,"
                    " 'fp_' || %s || n FROM generate_series(0, %s - 1) n",
                    (run, run, run, total),
                )
        port = free_port()
        env = {
            **os.environ,
            "DUNNING_DATABASE_URL": db_url,
            "DUNNING_REDIS_URL": redis_server.url,
            "DUNNING_STRIPE_WEBHOOK_SECRETS": SECRET,
            "DUNNING_PORT": str(port),
            "DUNNING_DATA_DIR": str(tmp / "data"),
            "DUNNING_WEB_CONCURRENCY": "1",
            "DUNNING_WORKER_CONCURRENCY": "2",
            "DUNNING_SMTP_HOST": "127.0.0.1",
            "DUNNING_SMTP_PORT": str(smtp.port),
            "DUNNING_EMAIL_HOURS_START": "0",
            "DUNNING_EMAIL_HOURS_END": "24",
            "DUNNING_SWEEP_INTERVAL_SECONDS": "1",
        }
        procs = {
            role: subprocess.Popen(
                [sys.executable, "-m", "dunning.cli", role],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for role in ("web", "worker", "beat")
        }
        peaks: dict[str, int] = {}
        depth = [0]
        stop = threading.Event()
        queue = redis.Redis.from_url(redis_server.url)
        watcher = threading.Thread(
            target=watch,
            args=({r: psutil.Process(p.pid) for r, p in procs.items()}, peaks, queue, depth, stop),
        )
        try:
            wait_for_port(port, timeout=60)
            url = f"http://127.0.0.1:{port}/webhooks/stripe"
            events = [e for n in range(args.failures) for e in renewal_events(n, "b", created)]
            delivered = events + random.sample(events, len(events) // 10)
            random.shuffle(delivered)
            host = f"127.0.0.1:{port}"
            requests = [http_load.webhook(host, json.dumps(e).encode(), SECRET) for e in delivered]
            watcher.start()
            with psycopg.connect(db_url, autocommit=True) as conn:
                start = time.perf_counter()
                bad, ingest_s = post_all(port, requests, args.connections)
                stored = scalar(conn, "SELECT count(*) FROM processor_events")
                left = args.timeout - ingest_s
                applied_s = ingest_s + wait(conn, UNHANDLED, 0, left)
                planned_s = time.perf_counter() - start
                planned_s += wait(conn, PLANNED, args.failures, args.timeout)
                open_cases = scalar(conn, PLANNED)
                emailed_s, emailed = 0.0, 0
                posted: dict[str, float] = {}
                answered: list[float] = []
                planned_lag = due_lag = send_lag = 0.0
                if steady_n:
                    # Renewal-day emails drain before the steady run measures latency.
                    drained = time.perf_counter()
                    while sink.count < args.failures and time.perf_counter() - drained < left:
                        time.sleep(0.5)
                    emailed_s, emailed = time.perf_counter() - start, sink.count
                    batches = []
                    for n in range(steady_n):
                        renewal = [signed(e) for e in renewal_events(n, "s", int(time.time()))]
                        batches.append((f"cs{n}@example.com", renewal))
                    posted, answered = asyncio.run(post_paced(url, batches, args.steady_rate))
                    deadline = time.perf_counter() + 120
                    while time.perf_counter() < deadline and not all(
                        k in sink.first for k in posted
                    ):
                        time.sleep(0.2)
                    lags = conn.execute(STEADY_LAGS).fetchone()
                    assert lags is not None
                    planned_lag, due_lag, send_lag = lags
            latencies = sorted(sink.first[k] - t for k, t in posted.items() if k in sink.first)
            stop.set()
            watcher.join()
        finally:
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                proc.wait(30)
            smtp.stop()
    redis_server.stop()

    print(f"failed renewals        {args.failures}  ({len(delivered)} deliveries, 10 % twice)")
    print(f"non-200 answers        {bad}; events stored {stored}")
    print(f"ingest rate            {len(delivered) / ingest_s:,.0f} deliveries/s")
    print(f"apply rate             {stored / applied_s:,.0f} events/s (first post to all applied)")
    print(f"all applied after      {applied_s:.1f} s")
    print(f"cases open + planned   {open_cases} after {planned_s:.1f} s")
    if steady_n:
        print(f"first emails sent      {emailed} after {emailed_s:.1f} s")
    print(f"largest queue depth    {depth[0]} task messages")
    for name, rss in sorted(peaks.items()):
        print(f"peak RSS {name:<15} {rss / 2**20:.0f} MiB")
    if steady_n:
        arrived = f"{len(latencies)} of {len(posted)} first emails arrived"
        if latencies:
            p50 = statistics.median(latencies)
            p95 = latencies[max(int(len(latencies) * 0.95) - 1, 0)]
            print(f"webhook -> first email {p50:.2f} s p50 / {p95:.2f} s p95  ({arrived})")
        else:
            print(f"webhook -> first email n/a ({arrived})")
        print(
            f"steady rate            {args.steady_rate:.0f} events/s"
            f" for {args.steady_seconds:.0f} s"
        )
        print(f"webhook answered       {statistics.median(answered) * 1000:.0f} ms p50")
        print(
            f"first email planned    {planned_lag:.2f} s after its webhook, due"
            f" {due_lag:.2f} s after planned, done {send_lag:.2f} s after due (means)"
        )
    print(f"load average           {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
