"""The list of report tables: the API, CSV export, dashboard and CLI are built from it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine

from dunning.db import get_engine
from dunning.reports import schemas
from dunning.reports.metrics.at_risk import at_risk, at_risk_summary
from dunning.reports.metrics.breakdowns import DIMENSIONS, ab_arms, breakdown, funnel
from dunning.reports.metrics.channels import recovered_by_channel
from dunning.reports.metrics.churn import churn
from dunning.reports.metrics.headline import headline
from dunning.reports.metrics.recovery import (
    monthly,
    recovery_days,
    time_to_recovery,
)
from dunning.reports.schemas import Filters

Compute = Callable[[Connection, Filters, datetime], Sequence[BaseModel]]

STATEMENT_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class ReportTable:
    """One table: its URL name, title, row model and the metric function behind it."""

    name: str
    title: str
    row: type[BaseModel]
    compute: Compute


def _no_as_of(fn: Callable[[Connection, Filters], Sequence[BaseModel]]) -> Compute:
    return lambda conn, f, _as_of: fn(conn, f)


def _breakdown(dimension: str) -> Compute:
    return lambda conn, f, _as_of: breakdown(conn, f, dimension)


# fmt: off
TABLES: dict[str, ReportTable] = {
    t.name: t
    for t in (
        ReportTable(
            "recovery", "Headline: failure, recovery and churn", schemas.HeadlineRow,
            _no_as_of(headline),
        ),
        ReportTable(
            "channels", "Recovered revenue by channel", schemas.ChannelRow,
            _no_as_of(recovered_by_channel),
        ),
        ReportTable(
            "time-to-recovery", "Time to recovery", schemas.TimeToRecoveryRow,
            _no_as_of(time_to_recovery),
        ),
        ReportTable(
            "recovery-days", "Recoveries by day since failure", schemas.RecoveryDayRow,
            _no_as_of(recovery_days),
        ),
        ReportTable(
            "monthly", "Cohorts by month", schemas.MonthRow, _no_as_of(monthly)
        ),
        ReportTable("churn", "Involuntary churn", schemas.ChurnRow, _no_as_of(churn)),
        *(
            ReportTable(
                f"breakdown/{dimension}",
                f"Recovery by {dimension.replace('_', ' ')}",
                schemas.BreakdownRow,
                _breakdown(dimension),
            )
            for dimension in DIMENSIONS
        ),
        ReportTable("ab", "Policy A/B comparison", schemas.ArmRow, _no_as_of(ab_arms)),
        ReportTable("funnel", "Email funnel", schemas.FunnelRow, _no_as_of(funnel)),
        ReportTable(
            "at-risk", "Renewals at risk (card expires first)", schemas.AtRiskRow,
            lambda conn, f, as_of: at_risk(conn, f, as_of),
        ),
        ReportTable(
            "at-risk/summary", "Renewals at risk by currency", schemas.AtRiskSummaryRow,
            lambda conn, f, as_of: at_risk_summary(conn, f, as_of),
        ),
    )
}
# fmt: on


# Settings of the report transaction only (SET LOCAL). random_page_cost 1.1: the report
# joins probe indexes of tables that live in RAM or on SSD, where Postgres' default of 4
# (tuned for spinning disks) makes the planner scan 2,000,000 invoices instead of probing
# 80,000 of them. jit off: compiling costs more than it saves on queries of a second.
# work_mem: the cohort's sorts (percentiles) stay in memory. hash_mem_multiplier 8 (a
# hash table may use 512 MB): the planner cannot tell how few groups the cohort's keys
# make (a month of a timestamp looks like a million) and would sort a million cases
# instead of hashing them into a few thousand groups; memory is used as groups appear.
REPORT_SETTINGS = {
    "statement_timeout": f"{STATEMENT_TIMEOUT_MS}",
    "random_page_cost": "1.1",
    "jit": "off",
    "work_mem": "64MB",
    "hash_mem_multiplier": "8",
}


@contextmanager
def reading(engine: Engine | None = None) -> Iterator[Connection]:
    """A read-only transaction for reports, with the report settings."""
    with (engine or get_engine()).connect() as conn:
        conn.execute(text("SET TRANSACTION READ ONLY"))
        names = list(REPORT_SETTINGS)
        conn.execute(
            text(
                "SELECT " + ", ".join(f"set_config(:n{i}, :v{i}, true)" for i in range(len(names)))
            ),
            {
                **{f"n{i}": n for i, n in enumerate(names)},
                **{f"v{i}": REPORT_SETTINGS[n] for i, n in enumerate(names)},
            },
        )
        try:
            yield conn
        finally:
            conn.rollback()


def last_full_month(today: date | None = None) -> tuple[date, date]:
    """``[first day of last month, first day of this month)`` in UTC: the default period."""
    end = (today or datetime.now(UTC).date()).replace(day=1)
    return (end - timedelta(days=1)).replace(day=1), end


def filters(
    start: date, end: date, currency: str | None = None, segment: str | None = None
) -> Filters:
    """Validated filters: ``start`` before ``end``, currency lower case, blanks dropped."""
    if end <= start:
        raise ValueError(f"'to' ({end}) must be after 'from' ({start})")
    cur = (currency or "").strip().lower() or None
    if cur is not None and (len(cur) != 3 or not cur.isalpha()):
        raise ValueError(f"currency must be a 3-letter ISO 4217 code, got {currency!r}")
    return Filters(start=start, end=end, currency=cur, segment=(segment or "").strip() or None)


def compute(
    name: str, f: Filters, as_of: datetime | None = None, conn: Connection | None = None
) -> list[BaseModel]:
    """The rows of table ``name`` for ``f`` (``as_of`` is now by default)."""
    table = TABLES[name]
    moment = as_of or datetime.now(UTC)
    if conn is not None:
        return list(table.compute(conn, f, moment))
    with reading() as own:
        return list(table.compute(own, f, moment))
