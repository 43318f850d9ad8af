"""The list of report tables: the API, CSV export, dashboard and CLI are built from it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from pydantic import BaseModel
from sqlalchemy import Connection

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
from dunning.reports.snapshot import reading

Compute = Callable[[Connection, Filters, datetime], Sequence[BaseModel]]


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
