"""Report reads: one read-only snapshot, and reads of it that run side by side.

A report or the dashboard page runs a dozen independent queries of up to a second each
at a million cases. Run one after another they add up (the 12-month page took 4-5 s);
``together`` runs them on up to ``WIDTH`` connections at once. Every connection sees
the same data: ``reading`` opens a ``REPEATABLE READ`` transaction, and each sibling
imports its snapshot (``pg_export_snapshot``), so the tables of a page always agree.

A connection that is not a ``reading`` (a test's transaction holding rows it has not
committed) runs the reads one after another on itself: a sibling could not see them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

from dunning.db import get_engine

STATEMENT_TIMEOUT_MS = 30_000
WIDTH = 3
"""Connections at most per ``together``: two cores' worth, and one waiting on I/O."""

# Settings of the report transaction only (SET LOCAL). random_page_cost 1.1: the report
# joins probe indexes of tables that live in RAM or on SSD, where Postgres' default of 4
# (tuned for spinning disks) makes the planner scan 2,000,000 invoices instead of probing
# 80,000 of them. jit off: compiling costs more than it saves on queries of a second.
# work_mem: the cohort's sorts (percentiles) stay in memory. hash_mem_multiplier 8 (a
# hash table may use 512 MB): the planner cannot tell how few groups the cohort's keys
# make (a month of a timestamp looks like a million) and would sort a million cases
# instead of hashing them into a few thousand groups; memory is used as groups appear.
# No parallel workers: ``together`` already keeps the cores busy with whole queries, and
# workers on top of it cost more than they save (the 12-month headline: 1.8-2.1 s with
# them, 1.2-1.3 s without, bench/reports.py).
REPORT_SETTINGS = {
    "statement_timeout": f"{STATEMENT_TIMEOUT_MS}",
    "random_page_cost": "1.1",
    "jit": "off",
    "work_mem": "64MB",
    "hash_mem_multiplier": "8",
    "max_parallel_workers_per_gather": "0",
}

_SNAPSHOT = "report_snapshot"  # Connection.info key: the snapshot a reading exported
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9]+)?")

Read = Callable[[Connection], Any]


def _begin(conn: Connection, snapshot: str | None = None) -> None:
    """Start ``conn``'s read-only snapshot transaction (``snapshot``: import that one)."""
    conn.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
    if snapshot is not None:
        if not _SNAPSHOT_ID.fullmatch(snapshot):  # it is spliced into the statement
            raise ValueError(f"not a snapshot id: {snapshot!r}")
        conn.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
    report_settings(conn)


def report_settings(conn: Connection) -> None:
    """Set ``REPORT_SETTINGS`` for the rest of ``conn``'s transaction."""
    names = list(REPORT_SETTINGS)
    conn.execute(
        text("SELECT " + ", ".join(f"set_config(:n{i}, :v{i}, true)" for i in range(len(names)))),
        {
            **{f"n{i}": n for i, n in enumerate(names)},
            **{f"v{i}": REPORT_SETTINGS[n] for i, n in enumerate(names)},
        },
    )


@contextmanager
def reading(engine: Engine | None = None) -> Iterator[Connection]:
    """A read-only snapshot transaction for reports, with the report settings."""
    with (engine or get_engine()).connect() as conn:
        _begin(conn)
        conn.info[_SNAPSHOT] = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
        try:
            yield conn
        finally:
            conn.info.pop(_SNAPSHOT, None)
            conn.rollback()


@contextmanager
def _sibling(engine: Engine, snapshot: str) -> Iterator[Connection]:
    with engine.connect() as conn:
        _begin(conn, snapshot)
        try:
            yield conn
        finally:
            conn.rollback()


def together(conn: Connection, reads: Sequence[Read]) -> list[Any]:
    """Each of ``reads`` called with a connection, on ``conn``'s snapshot; their results
    in order. Pass the longest first: each connection takes the next read as it is free.

    The siblings come from ``conn``'s pool, and only while its base size has room (a
    busy pool gets the reads one after another on ``conn``, never a wait for a
    connection while holding one)."""
    snapshot = conn.info.get(_SNAPSHOT)
    width = min(WIDTH, len(reads))
    if snapshot is not None and width > 1:
        pool: Any = conn.engine.pool
        room = pool.size() - pool.checkedout() if hasattr(pool, "checkedout") else 0
        width = min(width, 1 + max(room, 0))
    if snapshot is None or width <= 1:
        return [read(conn) for read in reads]
    results: list[Any] = [None] * len(reads)
    queue = list(enumerate(reads))
    queue.reverse()

    def drain(c: Connection) -> None:
        try:
            while queue:
                try:
                    i, read = queue.pop()
                except IndexError:  # another connection took the last one
                    return
                results[i] = read(c)
        except BaseException:
            queue.clear()  # the others stop after their current read
            raise

    with ExitStack() as stack, ThreadPoolExecutor(width - 1) as threads:
        siblings = [stack.enter_context(_sibling(conn.engine, snapshot)) for _ in range(width - 1)]
        running = [threads.submit(drain, c) for c in siblings]
        drain(conn)
        for future in running:
            future.result()
    return results
