"""Sweeper benchmark: how many due actions per second it claims and dispatches.

Seeds 1,000,000 open cases with one scheduled retry each, 10,000 of them due, then
runs the real sweeper (claim with FOR UPDATE SKIP LOCKED, commit, one Celery task
message per chunk of actions to a private Redis) until nothing is due, and prints the
rate.

    .venv/bin/python bench/sweeper.py [--cases 1000000] [--due 10000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.servers import ThrowawayRedis, fresh_database, postgres_server_url  # noqa: E402


def _seed(url: str, cases: int, due: int) -> float:
    every = cases // due
    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """INSERT INTO dunning_cases
                   (invoice_id, customer_id, state, amount, currency, opened_at)
               SELECT 'in_' || g, 'cus_' || g, 'open', 4900, 'usd', now() - interval '3 days'
               FROM generate_series(1, %s) g""",
            (cases,),
        )
        conn.execute(
            """INSERT INTO scheduled_actions (case_id, kind, due_at, dedupe_key, payload)
               SELECT g, 'retry_charge',
                      CASE WHEN g %% %s = 0 THEN now() - interval '1 minute'
                           ELSE now() + (1 + g %% 30) * interval '1 day' END,
                      'case:' || g || ':retry:2', '{"attempt_number": 2}'
               FROM generate_series(1, %s) g""",
            (every, cases),
        )
        conn.execute("VACUUM ANALYZE scheduled_actions")
        conn.execute("VACUUM ANALYZE dunning_cases")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="dunning-bench-"))
    os.environ.setdefault("XDG_RUNTIME_DIR", str(tmp))
    redis_server = ThrowawayRedis(tmp / "redis")
    redis_server.start()
    with fresh_database(postgres_server_url(tmp / "pg")) as url:
        os.environ.update(DUNNING_DATABASE_URL=url, DUNNING_REDIS_URL=redis_server.url)
        from dunning.db import get_engine
        from dunning.migrate import upgrade
        from dunning.scheduler import sweeper

        upgrade(url)
        seeded = _seed(url, args.cases, args.due)
        now = datetime.now(UTC)
        with psycopg.connect(url) as conn:
            plan = conn.execute(
                "EXPLAIN SELECT id FROM scheduled_actions WHERE status = 'pending'"
                " AND due_at <= %s ORDER BY due_at LIMIT 500 FOR UPDATE SKIP LOCKED",
                (now,),
            ).fetchall()
        start = time.perf_counter()
        sent = sweeper.sweep(now, batch=args.batch, max_actions=10**9)
        elapsed = time.perf_counter() - start
        start = time.perf_counter()
        again = sweeper.sweep(now, batch=args.batch)
        empty = time.perf_counter() - start
        import redis

        queued = redis.Redis.from_url(redis_server.url).llen("celery")
        get_engine().dispose()
    redis_server.stop()
    print(f"cases / scheduled actions   {args.cases:,} / {args.cases:,}")
    print(f"due now                     {args.due:,}")
    print(f"seeding took                {seeded:.1f} s")
    print(
        f"claimed and dispatched      {sent:,} in {elapsed:.2f} s "
        f"(batches of {args.batch}; {queued:,} task messages in Redis)"
    )
    print(f"rate                        {sent / elapsed:,.0f} actions/s")
    print(f"a sweep with nothing due    {empty * 1000:.1f} ms ({again} sent)")
    print("claim plan                  " + " / ".join(row[0].strip() for row in plan[:3]))


if __name__ == "__main__":
    main()
