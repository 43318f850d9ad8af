"""Which months of a period a read takes from the rollup, and what it reads live.

The rollup (``reports.models``) keeps, for each settled month built, the figures of the
reads below as the live queries compute them; its rows exist only while nothing those
reads see of the month has changed since (triggers delete them). A read asks, in its
own snapshot, which whole months of its period are there, reads those from the rollup
and the rest of the period (``live_ranges``) from the ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, text

from dunning.reports.metrics.sql import NO_CURRENCY, Ranges, case_bounds, params
from dunning.reports.schemas import Filters

MONTHS = "report_cohort_months"
GROUPS = "report_cohort_groups"
RECOVERIES = "report_cohort_recoveries"


def next_month(month: date) -> date:
    """The first day of the month after ``month``'s."""
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def rolled_months(conn: Connection, f: Filters) -> list[date]:
    """The months of ``f``'s period, wholly inside it, that the rollup holds now."""
    sql = f"SELECT month FROM {MONTHS} WHERE month >= :start AND month < :end ORDER BY 1"
    found = conn.execute(text(sql), {"start": f.start, "end": f.end}).scalars()
    return [m for m in found if next_month(m) <= f.end]


def live_ranges(f: Filters, months: Sequence[date]) -> Ranges:
    """The parts of ``f``'s period outside ``months`` (sorted, each inside it)."""
    out: list[tuple[date, date]] = []
    cursor = f.start
    for month in months:
        if cursor < month:
            out.append((cursor, month))
        cursor = next_month(month)
    if cursor < f.end or not months:
        out.append((cursor, f.end))
    return out


@dataclass(frozen=True)
class Split:
    """A period's settled months read from the rollup, and the parts of it read live."""

    months: list[date]  # from the rollup
    ranges: Ranges | None  # read live; None: the whole period

    def union(self, live: Callable[[Ranges | None], str], rolled: str) -> str:
        """The live query over ``ranges`` and the ``rolled`` query of ``months``, as one."""
        parts = [live(self.ranges)] if self.ranges is None or self.ranges else []
        if self.months:
            parts.append(rolled)
        return " UNION ALL ".join(parts)

    def params(self, f: Filters) -> dict[str, Any]:
        """The bind parameters of ``union``: ``f``'s, the live ranges and ``:rolled``."""
        return {**params(f, self.ranges or ()), "rolled": self.months}


def split(conn: Connection, f: Filters, rollable: bool) -> Split:
    """Which months of ``f``'s period to read from the rollup (none unless ``rollable``)."""
    months = rolled_months(conn, f) if rollable else []
    return Split(months, live_ranges(f, months) if months else None)


@dataclass(frozen=True)
class Rolled:
    """A read whose settled months the rollup keeps in ``table``: ``live`` is its SQL over
    ``ranges`` of a period (all of it for ``None``), grouped finely enough that the
    read's own query sums its rows; ``columns`` are its output and ``table``'s columns.
    Each row has the stored ``currency`` (maybe NULL), which a currency filter matches."""

    table: str
    columns: tuple[str, ...]
    live: Callable[[Filters, Ranges | None], str]
    bounded: bool = False  # ``live`` reads rows about cases ``among_cases``

    def params(self, conn: Connection, f: Filters, ranges: Ranges | None) -> dict[str, Any]:
        """The bind parameters of ``live(f, ranges)``."""
        bind = params(f, ranges or ())
        return {**bind, **case_bounds(conn, f, ranges)} if self.bounded else bind

    def rows(self, conn: Connection, f: Filters) -> tuple[str, dict[str, Any]]:
        """The SQL of ``live`` over ``f``'s period, its settled months read from the rollup
        (not for a segment: a customer's segment is no key of the rollup), and its
        bind parameters."""
        parts = split(conn, f, f.segment is None)
        currency = " AND r.currency = :currency" if f.currency else ""
        rolled = (
            f"SELECT {', '.join(f'r.{c}' for c in self.columns)} FROM {self.table} r"
            f" WHERE r.month = ANY(:rolled){currency}"
        )
        bind = parts.params(f)
        if parts.ranges is None or parts.ranges:  # something is read live
            bind.update(self.params(conn, f, parts.ranges))
        return parts.union(lambda r: self.live(f, r), rolled), bind

    def summed(self, conn: Connection, f: Filters) -> dict[str, tuple[int, ...]]:
        """Per currency (NULL as ``xxx``): each column after the currency, summed."""
        sql, bind = self.rows(conn, f)
        sums = ", ".join(f"sum(r.{c})::bigint" for c in self.columns[1:])
        found = conn.execute(
            text(f"SELECT coalesce(r.currency, '{NO_CURRENCY}'), {sums} FROM ({sql}) r GROUP BY 1"),
            bind,
        )
        return {r[0]: tuple(int(v) for v in r[1:]) for r in found}
