"""Finance report benchmark: 1,000,000 dunning cases and 5,000,000 charge attempts.

Seeds a fresh database on the machine's Postgres (127.0.0.1:5432, else an embedded one)
with ``generate_series`` SQL (``tests.support.synthetic``), then what that ledger lacks:
subscription start dates (the first invoice's creation; ``--no-start-dates`` clears them,
to time churn's fallback), SMS with link clicks and card-updater calls. Migrates
(also a kept database, so new indexes are timed), VACUUM ANALYZE, builds the rollup of
the settled months that it lacks (as the first dashboard view would), then times the report
functions the API and dashboard call, and the whole dashboard page (every table and chart
it shows, HTML rendering excluded): each first on a new connection ("cold": the pool
disposed, so a new backend with no cached plan or catalog, and no app cache; Postgres'
shared buffers and the OS page cache are not dropped) and then the median of ``--runs``
further runs ("warm"). The database is dropped at the end unless ``--database`` names
one to keep.

    .venv/bin/python bench/reports.py [--cases 1000000] [--runs 5] [--database NAME]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from dunning.db import engine_for  # noqa: E402
from dunning.migrate import upgrade  # noqa: E402
from dunning.reports.dashboard_page import Period, build_page  # noqa: E402
from dunning.reports.rollup import build  # noqa: E402
from dunning.reports.schemas import Filters  # noqa: E402
from dunning.reports.snapshot import reading  # noqa: E402
from dunning.reports.tables import TABLES  # noqa: E402
from tests.support.servers import fresh_database, postgres_server_url  # noqa: E402
from tests.support.synthetic import seed  # noqa: E402


def _time(url: str, name: str, f: Filters, runs: int) -> tuple[float, float, int]:
    """Seconds of the first run on a new connection, and the median of ``runs`` more."""
    engine = engine_for(url)
    table = TABLES[name]
    now = datetime.now(UTC)
    engine.dispose()  # a new connection: nothing prepared or cached in the backend
    t = time.perf_counter()
    with reading(engine) as conn:
        rows = table.compute(conn, f, now)
    cold = time.perf_counter() - t
    warm: list[float] = []
    for _ in range(runs):
        t = time.perf_counter()
        with reading(engine) as conn:
            table.compute(conn, f, now)
        warm.append(time.perf_counter() - t)
    return cold, statistics.median(warm), len(rows)


def _time_page(url: str, f: Filters, runs: int) -> tuple[float, float, int]:
    """The whole dashboard page: cold on a new connection, then the median of ``runs``."""
    engine = engine_for(url)
    now = datetime.now(UTC)
    engine.dispose()
    t = time.perf_counter()
    page = build_page(Period(f, False), now, engine)
    cold = time.perf_counter() - t
    warm: list[float] = []
    for _ in range(runs):
        t = time.perf_counter()
        build_page(Period(f, False), now, engine)
        warm.append(time.perf_counter() - t)
    return cold, statistics.median(warm), len(page.charts)


MONTH = Filters(start=date(2026, 10, 1), end=date(2026, 11, 1))
YEAR = Filters(start=date(2025, 11, 1), end=date(2026, 11, 1))  # the pages' 12 months


def _report(url: str, runs: int) -> None:
    month, year = MONTH, YEAR
    plan = [
        ("recovery", "month", month),
        ("recovery", "12 months", year),
        ("recovery", "month, usd", month.model_copy(update={"currency": "usd"})),
        ("recovery", "month, smb", month.model_copy(update={"segment": "smb"})),
        ("channels", "month", month),
        ("recovery-days", "month", month),
        ("monthly", "12 months", year),
        ("churn", "month", month),
        ("breakdown/decline_class", "month", month),
        ("breakdown/decline_code", "month", month),
        ("breakdown/card_brand", "month", month),
        ("breakdown/plan", "month", month),
        ("breakdown/segment", "month", month),
        ("breakdown/policy", "month", month),
        ("ab", "month", month),
        ("funnel", "month", month),
        ("at-risk/summary", "next 30 days", month),
    ]
    print(f"load average before: {_load()} ({os.cpu_count()} cores)")
    print(f"{'report':<26} {'period':<14} {'cold s':>8} {'warm s':>8} {'rows':>6}")
    for name, label, f in plan:
        cold, warm, n = _time(url, name, f, runs)
        print(f"{name:<26} {label:<14} {cold:8.3f} {warm:8.3f} {n:6d}", flush=True)
    for label, f in (("month", month), ("12 months", year)):
        cold, warm, n = _time_page(url, f, runs)
        print(f"{'dashboard page':<26} {label:<14} {cold:8.3f} {warm:8.3f} {n:6d}", flush=True)
    print(f"load average after: {_load()}")
    engine_for(url).dispose()


def _load() -> str:
    """The machine's load average (1, 5, 15 min): figures on a busy machine read higher."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# What the synthetic ledger lacks: start dates (the real ledger has Stripe's), one SMS for
# one case in ten (a third of them clicked through to a card update) and card-updater calls.
START_DATES = """
    UPDATE subscriptions s SET start_date = f.first
    FROM (SELECT subscription_id, min(processor_created) AS first FROM invoices
          GROUP BY 1) f
    WHERE f.subscription_id = s.id AND s.start_date IS NULL"""
EXTRAS = [
    """INSERT INTO notifications (dedupe_key, kind, channel, template, case_id, customer_id,
                                  step, status, created_at, sent_at)
       SELECT 'case:' || c.id || ':sms:1', 'dunning', 'sms', 'payment_failed', c.id,
              c.customer_id, 1, 'sent', c.opened_at + interval '1 day',
              c.opened_at + interval '1 day'
       FROM dunning_cases c WHERE c.id % 10 = 3""",
    """INSERT INTO case_events (case_id, at, kind, notification_id)
       SELECT n.case_id, n.sent_at + interval '1 hour', 'card_updated', n.id
       FROM notifications n WHERE n.channel = 'sms' AND n.id % 3 = 0""",
    """INSERT INTO card_updater_requests (case_id, provider, reason, asked_at, result)
       SELECT c.id, 'bench', 'before_retry', c.opened_at + interval '6 hours',
              CASE WHEN c.recovered_by = 'card_updater' THEN 'new_expiry'
                   WHEN c.id % 3 = 0 THEN 'new_card' ELSE 'unchanged' END
       FROM dunning_cases c WHERE c.recovered_by = 'card_updater' OR c.id % 7 = 0""",
]


def _complete(url: str, start_dates: bool) -> None:
    """Add what the synthetic ledger lacks (once), then VACUUM ANALYZE."""
    with psycopg.connect(url, autocommit=True) as conn:
        has_sms = conn.execute("SELECT 1 FROM notifications WHERE channel = 'sms' LIMIT 1")
        if has_sms.fetchone() is None:
            for sql in EXTRAS:
                conn.execute(sql.encode())
        conn.execute(
            START_DATES.encode() if start_dates else b"UPDATE subscriptions SET start_date = NULL"
        )
        conn.execute("VACUUM ANALYZE")


def _seed_fresh(url: str, cases: int) -> None:
    upgrade(url)
    print(f"seeding {cases:,} cases into {url.rsplit('/', 1)[1]}", flush=True)
    t = time.perf_counter()
    seed(url, cases)
    print(f"seeded in {time.perf_counter() - t:.1f} s\n", flush=True)


def _prepare(url: str, start_dates: bool) -> None:
    """Migrate (a kept database too: new indexes), add the extras, VACUUM ANALYZE, then
    build the rollup of the settled months (what the first page view would do)."""
    upgrade(url)
    t = time.perf_counter()
    _complete(url, start_dates)
    print(f"migrated and completed in {time.perf_counter() - t:.1f} s", flush=True)
    t = time.perf_counter()
    engine = engine_for(url)
    months = build(engine, YEAR, datetime.now(UTC))
    engine.dispose()
    print(f"rollup: {len(months)} months built in {time.perf_counter() - t:.1f} s\n", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--database",
        help="keep the seeded data in this database (seeded only if it does not exist yet)",
    )
    parser.add_argument(
        "--no-start-dates",
        action="store_true",
        help="clear the subscriptions' start dates (churn's fallback is timed)",
    )
    args = parser.parse_args()
    start_dates = not args.no_start_dates
    server = postgres_server_url(Path(tempfile.mkdtemp(prefix="dunning-bench-")) / "pg")
    if args.database is None:
        with fresh_database(server) as url:
            _seed_fresh(url, args.cases)
            _prepare(url, start_dates)
            _report(url, args.runs)
        return
    with psycopg.connect(server, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (args.database,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{args.database}"')
    url = server.rsplit("/", 1)[0] + "/" + args.database
    if not exists:
        _seed_fresh(url, args.cases)
    _prepare(url, start_dates)
    _report(url, args.runs)
    print(f"kept: {url}")


if __name__ == "__main__":
    main()
