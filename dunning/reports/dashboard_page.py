"""What the dashboard page shows: every table and chart, read in one transaction.

Each table is the rows of its report table (``TABLES``), computed by the same metric
functions from shared reads: the headline and the churn table share one churn query;
the headline, the trend's months of the period, the decline-class and decline-code
breakdowns, the A/B arms, the channels and the recovery days are groups of one scan of
the cohort (``cohort_groups``, all currencies; a currency's rows are those of all
currencies, filtered). Read on their own: the trend's months before the period, the
percentiles, the failure rate's paid renewals, the funnel, the card updater, the SMS,
churn and the renewals at risk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from markupsafe import Markup
from sqlalchemy.engine import Engine

from dunning.db import get_engine
from dunning.reports import schemas
from dunning.reports.dashboard_charts import ChartRows, draw_charts
from dunning.reports.metrics.breakdowns import ab_arms, breakdown
from dunning.reports.metrics.channels import (
    CHANNEL,
    recovered_by_channel,
    sms_sent,
    updater_calls,
)
from dunning.reports.metrics.cohort import cohort_groups
from dunning.reports.metrics.headline import HeadlineReads, headline, headline_reads
from dunning.reports.metrics.recovery import TOTALS, monthly, recovery_days
from dunning.reports.metrics.segments import segments
from dunning.reports.rollup import build
from dunning.reports.schemas import Filters
from dunning.reports.snapshot import Read, reading, together
from dunning.reports.tables import TABLES

TREND_MONTHS = 12
CLASS, CODE = "decline_class", "decline_code"
# The groupings of all currencies the page reads from one scan of the cohort.
GROUPINGS = (TOTALS, "month", "day", CHANNEL, "policy_id", CLASS, CODE)


def _months_before(end: date, months: int) -> date:
    """The first day of the month ``months - 1`` months before the one holding ``end - 1``."""
    last = end - timedelta(days=1)
    index = last.year * 12 + last.month - 1 - (months - 1)
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True)
class Period:
    """The filters shown, whether they are the default (the last 30 days up to now), and
    what was wrong with the ones asked for, if anything."""

    filters: Filters
    default: bool
    problem: str | None = None


@dataclass
class Page:
    """Everything the template shows, all from the report tables."""

    filters: Filters
    period: Period
    chart_currency: str | None
    currencies: list[str]
    segments: list[str]
    headline: list[schemas.HeadlineRow]
    channels: list[schemas.ChannelRow]
    churn: list[schemas.ChurnRow]
    arms: list[schemas.ArmRow]
    funnel: list[schemas.FunnelRow]
    at_risk: list[schemas.AtRiskSummaryRow]
    charts: dict[str, Markup]
    trend_start: date
    as_of: datetime


def build_page(period: Period, as_of: datetime, engine: Engine | None = None) -> Page:
    """Compute every table the dashboard shows, from one snapshot, the reads side by side
    (on ``engine``, the configured database's by default; the benchmark passes its own).
    The settled months of the period missing from the rollup are built first."""
    f = period.filters
    all_currencies = f.model_copy(update={"currency": None})
    trend_start = _months_before(f.end, TREND_MONTHS)
    before = all_currencies.model_copy(update={"start": trend_start, "end": f.start})

    def table(name: str) -> Read:
        return lambda c: list(TABLES[name].compute(c, f, as_of))

    # Every read at once, the longest (at a year) first; the headline's in its order.
    extra: dict[str, Read] = {
        "funnel": table("funnel"),
        "earlier": lambda c: cohort_groups(c, before, ["month"]) if trend_start < f.start else None,
        "sms": lambda c: sms_sent(c, f),
        "updater": lambda c: updater_calls(c, f),
        "at_risk": table("at-risk/summary"),
        "segments": segments,
    }
    first = headline_reads(all_currencies, GROUPINGS)
    engine = engine or get_engine()
    build(engine, all_currencies.model_copy(update={"start": min(trend_start, f.start)}), as_of)
    with reading(engine) as conn:
        found = together(conn, [*first[:2], *extra.values(), *first[2:]])
        reads = HeadlineReads(*found[:2], *found[2 + len(extra) :])
        got = dict(zip(extra, found[2 : 2 + len(extra)], strict=True))
        arms = ab_arms(conn, f, reads.groups)  # names the arms' policies: one small read
        groups = reads.groups
        everything = headline(conn, all_currencies, reads)
        shown = [r for r in everything if f.currency is None or r.currency == f.currency]
        chart_currency = f.currency or (
            max(shown, key=lambda r: (r.cases_opened, r.renewals_attempted)).currency
            if shown
            else None
        )
        in_currency = f.model_copy(update={"currency": chart_currency})
        earlier = [got["earlier"]] if got["earlier"] is not None else []
        trend_filters = in_currency.model_copy(update={"start": trend_start})
        trend = [
            m for m in monthly(conn, trend_filters, *earlier, groups) if m.month >= trend_start
        ]
        by_class = breakdown(conn, in_currency, CLASS, groups)
        by_code = breakdown(conn, in_currency, CODE, groups)
        channels = recovered_by_channel(conn, f, groups, (got["updater"], got["sms"]))
        days = recovery_days(conn, in_currency, groups)
    currencies = {r.currency for r in everything} | ({f.currency} if f.currency else set())
    page = Page(
        filters=f,
        period=period,
        chart_currency=chart_currency,
        currencies=sorted(currencies),
        segments=got["segments"],
        headline=shown,
        channels=channels,
        churn=[r for r in reads.churn if f.currency is None or r.currency == f.currency],
        arms=arms,
        funnel=got["funnel"],
        at_risk=got["at_risk"],
        charts={},
        trend_start=trend_start,
        as_of=as_of,
    )
    page.charts = draw_charts(
        ChartRows(
            currency=chart_currency,
            trend_start=trend_start,
            end=f.end,
            trend=trend,
            by_class=by_class,
            by_code=by_code,
            days=days,
            arms=page.arms,
            funnel=page.funnel,
            channels=channels,
        )
    )
    return page
