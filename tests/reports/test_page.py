"""The dashboard page reads its tables from one shared scan of the cohort: every table and
chart it shows equals that table computed alone (``TABLES``), for any period and filter."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import text

from dunning.db import get_engine
from dunning.reports.dashboard_charts import ChartRows, draw_charts
from dunning.reports.dashboard_page import Period, build_page
from dunning.reports.metrics.recovery import recovery_days
from dunning.reports.schemas import Filters
from dunning.reports.snapshot import reading
from dunning.reports.tables import TABLES
from tests.support.report_ledger import at, insert_ledger

AS_OF = at(11, 1)
PERIODS = [
    Filters(start=date(2026, 10, 1), end=date(2026, 11, 1)),
    Filters(start=date(2026, 10, 1), end=date(2026, 11, 1), currency="eur"),
    Filters(start=date(2026, 10, 1), end=date(2026, 11, 1), segment="smb"),
    Filters(start=date(2026, 10, 5), end=date(2026, 11, 3)),  # not on month boundaries
    Filters(start=date(2026, 9, 1), end=date(2026, 12, 1), currency="usd"),
    Filters(start=date(2024, 6, 1), end=date(2026, 11, 1)),  # longer than the trend
    Filters(start=date(2020, 1, 1), end=date(2020, 2, 1)),  # nothing in it
]


@pytest.fixture
def ledger(clean_db: None) -> None:
    """The hand-built ledger, committed (the page reads on its own connection), and an
    October case stored without a currency: it is reported under ``xxx``."""
    with get_engine().begin() as conn:
        insert_ledger(conn)
        conn.execute(
            text(
                "INSERT INTO dunning_cases (id, invoice_id, state, amount, opened_at,"
                " closed_at, recovered_amount, recovered_by)"
                " VALUES (99, 'in_nocur', 'recovered', 700, :o, :c, 700, 'retry')"
            ),
            {"o": at(10, 20), "c": at(10, 22)},
        )


@pytest.mark.parametrize("f", PERIODS, ids=lambda f: f"{f.start}-{f.end}-{f.currency}-{f.segment}")
def test_every_table_and_chart_of_the_page_is_its_table_alone(ledger: None, f: Filters) -> None:
    page = build_page(Period(f, False), AS_OF)
    with reading() as conn:

        def table(name: str, filters: Filters = f) -> list[object]:
            return list(TABLES[name].compute(conn, filters, AS_OF))

        everything = table("recovery", f.model_copy(update={"currency": None}))
        assert page.headline == [r for r in everything if f.currency in (None, r.currency)]
        assert page.churn == table("churn")
        assert page.channels == table("channels")
        assert page.arms == table("ab")
        assert page.funnel == table("funnel")
        assert page.at_risk == table("at-risk/summary")
        in_currency = f.model_copy(update={"currency": page.chart_currency})
        trend = in_currency.model_copy(update={"start": page.trend_start})
        charts = draw_charts(
            ChartRows(
                currency=page.chart_currency,
                trend_start=page.trend_start,
                end=f.end,
                trend=table("monthly", trend),  # type: ignore[arg-type]
                by_class=table("breakdown/decline_class", in_currency),  # type: ignore[arg-type]
                by_code=table("breakdown/decline_code", in_currency),  # type: ignore[arg-type]
                days=table("recovery-days", in_currency),  # type: ignore[arg-type]
                arms=page.arms,
                funnel=page.funnel,
                channels=page.channels,
            )
        )
    assert page.charts == charts


def test_a_case_without_a_currency_is_counted_once_under_xxx(ledger: None) -> None:
    october = Filters(start=date(2026, 10, 1), end=date(2026, 11, 1))
    page = build_page(Period(october, False), AS_OF)
    [xxx] = [r for r in page.headline if r.currency == "xxx"]
    assert (xxx.cases_opened, xxx.cases_recovered, xxx.recovered_amount) == (1, 1, 700)
    retry = [r for r in page.channels if r.currency == "xxx" and r.channel == "retry"]
    assert [(r.cases, r.amount) for r in retry] == [(1, 700)]
    assert sum(a.cases_opened for a in page.arms) == 10 + 2 + 1  # usd, eur, the one


def test_whole_days_to_recovery_are_floored_and_capped(clean_db: None) -> None:
    """Days since the failure from the interval's day field: a microsecond short of a day
    is day 0, a day is day 1, 45 days are the last bucket, a payment dated before the
    failure (clock skew) is day 0; as ``floor(seconds / 86400)`` capped at 30."""
    opened = at(10, 10)
    closed = {
        1: opened + timedelta(days=1, microseconds=-1),
        2: opened + timedelta(days=1),
        3: opened + timedelta(days=45),
        4: opened - timedelta(hours=5),
        5: opened + timedelta(days=29, hours=23, minutes=59),
    }
    with get_engine().begin() as conn:
        for case_id, at_close in closed.items():
            conn.execute(
                text(
                    "INSERT INTO dunning_cases (id, invoice_id, state, amount, currency,"
                    " opened_at, closed_at, recovered_amount)"
                    " VALUES (:id, :inv, 'recovered', 100, 'usd', :o, :c, 100)"
                ),
                {"id": case_id, "inv": f"in_{case_id}", "o": opened, "c": at_close},
            )
    october = Filters(start=date(2026, 10, 1), end=date(2026, 11, 1))
    with reading() as conn:
        days = [(d.day, d.cases) for d in recovery_days(conn, october)]
    assert days == [(0, 2), (1, 1), (29, 1), (30, 1)]
