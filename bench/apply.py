"""Per-process apply rate: how many stored events one process applies per second.

Stores N distinct ``invoice.payment_failed`` events (each its own invoice, customer and
subscription) in a fresh database, then times ``events.service.handle_events`` over
them in this one process, in batches the size the webhook's task messages carry.
Prints events/s and the SQL statements per event.

    .venv/bin/python bench/apply.py [--events 2000] [--batch 100]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.servers import fresh_database, postgres_server_url  # noqa: E402


def failed_renewal(n: int, run: str, created: int) -> dict[str, object]:
    """One failed renewal's ``invoice.payment_failed`` (current API shape)."""
    invoice = {
        "id": f"in_{run}{n}",
        "object": "invoice",
        "customer": f"cus_{run}{n}",
        "status": "open",
        "attempt_count": 1,
        "amount_due": 4900,
        "currency": "usd",
        "billing_reason": "subscription_cycle",
        "created": created - 3600,
        "parent": {"subscription_details": {"subscription": f"sub_{run}{n}"}},
    }
    return {
        "id": f"evt_{run}{n}",
        "object": "event",
        "type": "invoice.payment_failed",
        "created": created,
        "livemode": False,
        "data": {"object": invoice},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="dunning-bench-"))
    with fresh_database(postgres_server_url(tmp / "pg")) as db_url:
        os.environ["DUNNING_DATABASE_URL"] = db_url
        os.environ.setdefault("DUNNING_REDIS_URL", "redis://127.0.0.1:1/0")  # never used
        from sqlalchemy import event as sa_event

        from dunning.db import get_engine
        from dunning.events import service
        from dunning.events.store import INSERT_EVENTS_SQL, insert_params, parse_event
        from dunning.migrate import upgrade
        from dunning.startup import settle_heap

        upgrade(db_url)
        created = int(time.time()) - 60
        raws = [failed_renewal(n, "bench", created) for n in range(args.events)]
        events = [parse_event(json.dumps(r).encode(), {}) for r in raws]
        with psycopg.connect(db_url) as conn:
            rows = conn.execute(INSERT_EVENTS_SQL, insert_params(events)).fetchall()
        ids = sorted(row[0] for row in rows)

        statements = 0

        def count(*_: object) -> None:
            nonlocal statements
            statements += 1

        sa_event.listen(get_engine(), "before_cursor_execute", count)
        settle_heap()  # as a worker process does at start (workers/celery_app.py)
        start, cpu = time.perf_counter(), time.process_time()
        counts: dict[str, int] = {}
        for first in range(0, len(ids), args.batch):
            for status, n in service.handle_events(ids[first : first + args.batch]).items():
                counts[status] = counts.get(status, 0) + n
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        get_engine().dispose()
    print(f"events                 {args.events}  (distinct invoices, batch {args.batch})")
    print(f"outcomes               {counts}")
    print(f"apply rate             {args.events / elapsed:,.0f} events/s  (one process)")
    print(f"SQL statements / event {statements / args.events:.1f}")
    print(f"CPU of this process    {cpu * 1000 / args.events:.1f} ms / event")
    print(f"load average           {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
