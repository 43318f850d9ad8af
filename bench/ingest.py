"""Webhook ingest benchmark.

Starts the real web process and a worker against Postgres and a private Redis, posts
validly signed events from many concurrent connections for a fixed time, and prints
accepted events/s, latency, stored vs sent, peak RSS, and, in the same run, the raw
single-row insert rate of Postgres into a table of the same shape, with the ratio.

    .venv/bin/python bench/ingest.py [--seconds 10] [--connections 64] [--raw-clients 4]
                                     [--web-processes 2] [--no-worker]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import http_load  # noqa: E402
from dunning.migrate import upgrade  # noqa: E402
from tests.support.servers import (  # noqa: E402
    ThrowawayRedis,
    free_port,
    fresh_database,
    postgres_server_url,
    wait_for_port,
)

SECRET = "whsec_bench"


def _body(n: int, run: str = "") -> bytes:
    invoice = {
        "id": f"in_bench_{n}",
        "object": "invoice",
        "customer": f"cus_bench_{n % 500}",
        "status": "open",
        "attempt_count": 1,
        "amount_due": 4900,
        "currency": "usd",
        "parent": {"subscription_details": {"subscription": f"sub_bench_{n % 500}"}},
    }
    event = {
        "id": f"evt_bench_{run}{n}",
        "object": "event",
        "type": "invoice.payment_failed",
        "created": int(time.time()),
        "livemode": False,
        "data": {"object": invoice},
    }
    return json.dumps(event).encode()


def _signed(count: int, run: str, host: str) -> list[bytes]:
    """Requests made before the clock starts, so the client spends its CPU on sending
    (it shares the machine's two cores with the service and Postgres)."""
    return [http_load.webhook(host, _body(n, run), SECRET) for n in range(count)]


def _raw_insert_rate(dsn: str, seconds: float, clients: int) -> float:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS raw_insert_bench")
        conn.execute("CREATE TABLE raw_insert_bench (LIKE processor_events INCLUDING ALL)")
    body, headers = _body(0).decode(), json.dumps({"stripe-signature": "t=1,v1=x"})
    counts = [0] * clients

    def worker(k: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            deadline = time.perf_counter() + seconds
            n = 0
            while time.perf_counter() < deadline:
                conn.execute(
                    "INSERT INTO raw_insert_bench (processor, event_id, type, body, headers)"
                    " VALUES ('stripe', %s, 'invoice.payment_failed', %s, %s)",
                    (f"raw_{k}_{n}", body, headers),
                )
                n += 1
            counts[k] = n

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / seconds


def _watch_rss(
    procs: dict[str, psutil.Process], peaks: dict[str, int], stop: threading.Event
) -> None:
    while not stop.is_set():
        for name, proc in procs.items():
            try:
                rss = proc.memory_info().rss + sum(
                    c.memory_info().rss for c in proc.children(recursive=True)
                )
            except psutil.Error:
                continue
            peaks[name] = max(peaks.get(name, 0), rss)
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--raw-clients", type=int, default=4)
    parser.add_argument("--no-worker", action="store_true", help="measure intake alone")
    parser.add_argument(
        "--web-processes", type=int, default=2, help="DUNNING_WEB_CONCURRENCY (one per core)"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="dunning-bench-"))
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp))
    redis_server = ThrowawayRedis(tmp / "redis")
    redis_server.start()
    with fresh_database(postgres_server_url(tmp / "pg")) as db_url:
        upgrade(db_url)
        port = free_port()
        env = {
            **os.environ,
            "DUNNING_DATABASE_URL": db_url,
            "DUNNING_REDIS_URL": redis_server.url,
            "DUNNING_STRIPE_WEBHOOK_SECRETS": SECRET,
            "DUNNING_PORT": str(port),
            "DUNNING_DATA_DIR": str(tmp / "data"),
            "DUNNING_WEB_CONCURRENCY": str(args.web_processes),
        }
        web = subprocess.Popen(
            [sys.executable, "-m", "dunning.cli", "web"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # --no-worker: a placeholder process, so intake alone has the machine's cores.
        worker_cmd = (
            ["sleep", "3600"] if args.no_worker else [sys.executable, "-m", "dunning.cli", "worker"]
        )
        worker = subprocess.Popen(
            worker_cmd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peaks: dict[str, int] = {}
        stop = threading.Event()
        watcher = threading.Thread(
            target=_watch_rss,
            args=(
                {"web": psutil.Process(web.pid), "worker": psutil.Process(worker.pid)},
                peaks,
                stop,
            ),
        )
        try:
            wait_for_port(port, timeout=30)
            host = f"127.0.0.1:{port}"
            requests = _signed(int(args.seconds * 12_000), "run-", host)
            watcher.start()
            http_load.post("127.0.0.1", port, _signed(2_000, "warmup-", host), 1.0, 8)
            with psycopg.connect(db_url) as conn:
                before = conn.execute("SELECT count(*) FROM processor_events").fetchone()[0]
            load = http_load.post("127.0.0.1", port, requests, args.seconds, args.connections)
            sent, accepted, latencies = load.sent, load.accepted, load.latencies
            with psycopg.connect(db_url) as conn:
                stored = (
                    conn.execute("SELECT count(*) FROM processor_events").fetchone()[0] - before
                )
                applied = conn.execute(
                    "SELECT count(*) FROM processor_events WHERE status <> 'pending'"
                ).fetchone()[0]
            stop.set()
            watcher.join()
        finally:
            web.terminate()
            worker.terminate()
            web.wait(15)
            worker.wait(15)
        raw = _raw_insert_rate(db_url, args.seconds, args.raw_clients)
    redis_server.stop()

    rate = accepted / args.seconds
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print(f"connections            {args.connections}")
    worker_state = "none" if args.no_worker else "applying events alongside"
    print(f"web processes          {args.web_processes}  (worker: {worker_state})")
    print(f"duration               {args.seconds:.0f} s")
    print(f"events sent            {sent}")
    print(f"events accepted (200)  {accepted}")
    verdict = "equal" if stored == accepted == sent else "MISMATCH"
    print(f"events stored          {stored}  ({verdict})")
    print(f"accepted events/s      {rate:,.0f}")
    if not args.no_worker:
        print(f"applied by the end     {applied}  (warm-up included; the worker runs niced)")
    print(f"latency p50 / p99      {p50:.1f} ms / {p99:.1f} ms")
    print(
        f"peak RSS web / worker  {peaks.get('web', 0) / 2**20:.0f} MiB / "
        f"{peaks.get('worker', 0) / 2**20:.0f} MiB"
    )
    print(f"raw inserts/s          {raw:,.0f}  ({args.raw_clients} clients, one row per commit)")
    print(f"ingest / raw           {rate / raw:.2f}")


if __name__ == "__main__":
    main()
