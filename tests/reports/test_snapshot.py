"""Reads side by side (``snapshot.together``): one snapshot on several connections."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, text

from dunning.db import get_engine
from dunning.reports.snapshot import reading, together


def _add_customer(conn: Connection, customer_id: str) -> None:
    conn.execute(text("INSERT INTO customers (id) VALUES (:id)"), {"id": customer_id})


def _seen(conn: Connection) -> tuple[int, int]:
    """(this backend's pid, customers it sees), after a pause that lets the others start."""
    conn.execute(text("SELECT pg_sleep(0.2)"))
    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    return pid, conn.execute(text("SELECT count(*) FROM customers")).scalar_one()


def test_the_reads_run_on_several_connections_that_see_one_snapshot(clean_db: None) -> None:
    with get_engine().begin() as conn:
        _add_customer(conn, "cus_before")
    with reading() as conn:
        first = conn.execute(text("SELECT count(*) FROM customers")).scalar_one()
        with get_engine().begin() as other:  # committed after the snapshot was taken
            _add_customer(other, "cus_after")
        seen = together(conn, [_seen] * 3)
    assert first == 1
    assert [n for _, n in seen] == [1, 1, 1]
    assert len({pid for pid, _ in seen}) == 3


def test_a_connection_that_is_not_a_reading_runs_the_reads_itself(clean_db: None) -> None:
    """A transaction's own uncommitted rows are seen: no sibling could see them."""
    with get_engine().connect() as conn:
        _add_customer(conn, "cus_uncommitted")
        seen = together(conn, [_seen] * 3)
        conn.rollback()
    assert [n for _, n in seen] == [1, 1, 1]
    assert len({pid for pid, _ in seen}) == 1


def test_a_failing_read_fails_the_whole(clean_db: None) -> None:
    def broken(conn: Connection) -> None:
        conn.execute(text("SELECT 1 / 0"))

    with reading() as conn, pytest.raises(Exception, match="division by zero"):
        together(conn, [_seen, broken, _seen])
