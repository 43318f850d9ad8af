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
from typing import Any

from markupsafe import Markup
from sqlalchemy.engine import Engine

from dunning.reports import schemas
from dunning.reports.dashboard_charts import ChartRows, draw_charts
from dunning.reports.metrics.breakdowns import ab_arms, breakdown
from dunning.reports.metrics.channels import CHANNEL, recovered_by_channel
from dunning.reports.metrics.churn import churn
from dunning.reports.metrics.cohort import cohort_groups
from dunning.reports.metrics.headline import headline
from dunning.reports.metrics.recovery import TOTALS, monthly, recovery_days
from dunning.reports.metrics.segments import segments
from dunning.reports.schemas import Filters
from dunning.reports.tables import TABLES, reading

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
    """Compute every table the dashboard shows, in one read-only transaction (on
    ``engine``, the configured database's by default; the benchmark passes its own)."""
    f = period.filters
    with reading(engine) as conn:

        def rows(name: str, filters: Filters = f) -> list[Any]:
            return list(TABLES[name].compute(conn, filters, as_of))

        all_currencies = f.model_copy(update={"currency": None})
        groups = cohort_groups(conn, all_currencies, GROUPINGS)
        churn_rows = churn(conn, all_currencies)  # once: for the headline and its table
        everything = headline(conn, all_currencies, churn_rows, groups)
        currencies = [r.currency for r in everything]
        shown = [r for r in everything if f.currency is None or r.currency == f.currency]
        chart_currency = f.currency or (
            max(shown, key=lambda r: (r.cases_opened, r.renewals_attempted)).currency
            if shown
            else None
        )
        if f.currency and f.currency not in currencies:
            currencies.append(f.currency)
        in_currency = f.model_copy(update={"currency": chart_currency})
        trend_start = _months_before(f.end, TREND_MONTHS)
        before = in_currency.model_copy(update={"start": trend_start, "end": f.start})
        earlier = [cohort_groups(conn, before, ["month"])] if trend_start < f.start else []
        trend_filters = in_currency.model_copy(update={"start": trend_start})
        trend = [
            m for m in monthly(conn, trend_filters, *earlier, groups) if m.month >= trend_start
        ]
        by_class = breakdown(conn, in_currency, CLASS, groups)
        by_code = breakdown(conn, in_currency, CODE, groups)
        channels = recovered_by_channel(conn, f, groups)
        page = Page(
            filters=f,
            period=period,
            chart_currency=chart_currency,
            currencies=sorted(currencies),
            segments=segments(conn),
            headline=shown,
            channels=channels,
            churn=[r for r in churn_rows if f.currency is None or r.currency == f.currency],
            arms=ab_arms(conn, f, groups),
            funnel=rows("funnel"),
            at_risk=rows("at-risk/summary"),
            charts={},
            trend_start=trend_start,
            as_of=as_of,
        )
        days = recovery_days(conn, in_currency, groups)
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
