"""Finance report benchmark: 1,000,000 dunning cases and 5,000,000 charge attempts.

Seeds a fresh database on the machine's Postgres (127.0.0.1:5432, else an embedded one)
with ``generate_series`` SQL, runs the migrations' indexes, VACUUM ANALYZE, then times the
report functions the API and dashboard call: each first on a new connection ("cold": the
first run after seeding, plans not cached, shared buffers not warmed by an earlier report
run; the OS page cache is not dropped) and then the median of ``--runs`` further runs
("warm"). The database is dropped at the end unless ``--keep``.

    .venv/bin/python bench/reports.py [--cases 1000000] [--runs 5] [--keep]
"""

from __future__ import annotations

import argparse
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
from dunning.reports.schemas import Filters  # noqa: E402
from dunning.reports.tables import TABLES, reading  # noqa: E402
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


def _report(url: str, runs: int) -> None:
    month = Filters(start=date(2026, 10, 1), end=date(2026, 11, 1))
    year = Filters(start=date(2025, 11, 1), end=date(2026, 11, 1))
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
    print(f"{'report':<26} {'period':<14} {'cold s':>8} {'warm s':>8} {'rows':>6}")
    for name, label, f in plan:
        cold, warm, n = _time(url, name, f, runs)
        print(f"{name:<26} {label:<14} {cold:8.3f} {warm:8.3f} {n:6d}", flush=True)
    engine_for(url).dispose()


def _seed_fresh(url: str, cases: int) -> None:
    upgrade(url)
    print(f"seeding {cases:,} cases into {url.rsplit('/', 1)[1]}", flush=True)
    t = time.perf_counter()
    seed(url, cases)
    print(f"seeded in {time.perf_counter() - t:.1f} s\n", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--database",
        help="keep the seeded data in this database (seeded only if it does not exist yet)",
    )
    args = parser.parse_args()
    server = postgres_server_url(Path(tempfile.mkdtemp(prefix="dunning-bench-")) / "pg")
    if args.database is None:
        with fresh_database(server) as url:
            _seed_fresh(url, args.cases)
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
    _report(url, args.runs)
    print(f"kept: {url}")


if __name__ == "__main__":
    main()
