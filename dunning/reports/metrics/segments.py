"""The customer segments a report can be filtered by."""

from __future__ import annotations

from sqlalchemy import Connection, text


def segments(conn: Connection) -> list[str]:
    """Customer segments known to the ledger, for the dashboard's filter."""
    sql = "SELECT DISTINCT segment FROM customers WHERE segment IS NOT NULL ORDER BY 1"
    return [r[0] for r in conn.execute(text(sql))]
