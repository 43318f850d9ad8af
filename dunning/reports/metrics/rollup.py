"""Which months of a period a read takes from the rollup, and what it reads live.

The rollup (``reports.models``) keeps, for each settled month built, the cohort's groups
and seconds to recovery, as the live queries compute them; its rows exist only while no
case of the month has changed since (a trigger deletes them). A read asks, in its own
snapshot, which whole months of its period are there, reads those from the rollup and
the rest of the period (``live_ranges``) from the cases.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, text

from dunning.reports.metrics.sql import Ranges, params
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
