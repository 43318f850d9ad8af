"""Each metric on the hand-built ledger of ``tests.support.report_ledger``, worked out here."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import Connection, text

from dunning.db import get_engine
from dunning.reports.metrics.at_risk import at_risk, at_risk_summary
from dunning.reports.metrics.breakdowns import ab_arms, breakdown, funnel
from dunning.reports.metrics.channels import CHANNELS, SMS, UPDATER, recovered_by_channel
from dunning.reports.metrics.churn import churn
from dunning.reports.metrics.headline import headline
from dunning.reports.metrics.recovery import monthly, recovery_days, time_to_recovery
from dunning.reports.schemas import Filters
from dunning.reports.stats import wilson_interval
from tests.support.report_ledger import at, insert_ledger

OCTOBER = Filters(start=date(2026, 10, 1), end=date(2026, 11, 1))


@pytest.fixture
def conn(clean_db: None) -> Iterator[Connection]:
    """The ledger, inserted in a transaction that is rolled back after the test."""
    with get_engine().connect() as connection:
        insert_ledger(connection)
        yield connection
        connection.rollback()


def _by(rows: list[Any], *keys: str) -> dict[Any, Any]:
    return {tuple(getattr(r, k) for k in keys) if len(keys) > 1 else getattr(r, keys[0]): r
            for r in rows}  # fmt: skip


def test_headline_per_currency(conn: Connection) -> None:
    rows = _by(headline(conn, OCTOBER), "currency")
    assert set(rows) == {"usd", "eur"}  # never added together
    usd = rows["usd"]
    # Failure rate: 9 renewal cases (c1-c8, c15; c9 is a one-off invoice) + 2 renewals paid
    # first time (in_p1, in_p2; not in_p3 first invoice, in_p4 September, in_p5 nothing due).
    assert (usd.renewals_failed, usd.renewals_attempted) == (9, 11)
    assert usd.failure_rate == 9 / 11
    # Cohort: c1-c9 and c15; c6 open; recovered c1, c2, c3, c4, c7 (c7 reopened: once).
    assert (usd.cases_opened, usd.cases_closed, usd.cases_open) == (10, 9, 1)
    assert usd.cases_recovered == 5
    assert usd.recovery_rate == 5 / 9
    failed = 1000 + 2000 + 3000 + 4000 + 5000 + 6000 + 7000 + 120000 + 900 + 1100
    assert usd.failed_amount == failed == 150000
    assert usd.closed_failed_amount == failed - 6000
    assert usd.recovered_amount == 1000 + 2000 + 3000 + 4000 + 7000
    assert usd.recovery_rate_amount == 17000 / 144000
    # Hours to recovery 24, 48, 96, 132, 240: median 96; p90 at rank 3.6 = 132 + .6 * 108.
    assert usd.median_hours_to_recovery == pytest.approx(96)
    assert usd.p90_hours_to_recovery == pytest.approx(196.8)
    # Churn: sub_5, sub_8 (cases c5, c8) and sub_14 (c14 opened in Sept, canceled Oct 10);
    # not sub_15 (the customer canceled). Active on Oct 1 by start date: sub_1-8, 12, 13,
    # 14, 15, sub_trial, sub_year; started in October: sub_new, sub_oct. Over all 16 live.
    assert (usd.churned_subscriptions, usd.active_subscriptions_at_start) == (3, 14)
    assert usd.subscriptions_started == 2
    assert usd.involuntary_churn_rate == 3 / 16
    assert usd.churned_mrr == 5000 + 120000 // 12 + 3000

    eur = rows["eur"]
    assert (eur.renewals_failed, eur.renewals_attempted, eur.failure_rate) == (2, 3, 2 / 3)
    assert (eur.cases_opened, eur.cases_closed, eur.cases_recovered) == (2, 2, 1)
    assert (eur.failed_amount, eur.recovered_amount, eur.recovery_rate_amount) == (
        4000,
        1500,
        1500 / 4000,
    )
    assert eur.median_hours_to_recovery == pytest.approx(24)
    assert (eur.churned_subscriptions, eur.active_subscriptions_at_start) == (0, 2)
    assert eur.involuntary_churn_rate == 0


def test_currency_and_segment_filters(conn: Connection) -> None:
    [eur] = headline(conn, OCTOBER.model_copy(update={"currency": "eur"}))
    assert (eur.currency, eur.cases_opened) == ("eur", 2)
    smb = _by(headline(conn, OCTOBER.model_copy(update={"segment": "smb"})), "currency")
    # smb = cus_a (c1, c2, c5, c7, c15) and cus_e (c10, c11).
    assert (smb["usd"].cases_opened, smb["usd"].cases_recovered) == (5, 3)
    assert smb["usd"].renewals_attempted == 5 + 2  # in_p1 and in_p2 are cus_a's
    assert smb["eur"].cases_opened == 2
    # cus_a's subscriptions active on Oct 1: sub_1, 2, 5, 7, 12, 13, 14, 15.
    assert (smb["usd"].churned_subscriptions, smb["usd"].active_subscriptions_at_start) == (2, 8)


def test_recovered_revenue_by_channel(conn: Connection) -> None:
    rows = _by(recovered_by_channel(conn, OCTOBER), "currency", "channel")
    usd = {ch: (rows["usd", ch].cases, rows["usd", ch].amount) for ch in CHANNELS}
    assert usd == {
        "retry": (2, 1000 + 7000),
        "processor": (1, 2000),
        "customer": (1, 3000),
        "card_updater": (1, 4000),
    }
    assert rows["usd", "retry"].share == 8000 / 17000
    assert (rows["eur", "customer"].amount, rows["eur", "customer"].share) == (1500, 1.0)
    assert (rows["eur", "retry"].amount, rows["eur", "retry"].share) == (0, 0.0)
    assert [r.channel for r in recovered_by_channel(conn, OCTOBER) if r.currency == "usd"] == [
        *CHANNELS,
        SMS,
    ]


def test_the_card_updater_row_counts_its_calls_and_hits(conn: Connection) -> None:
    rows = _by(recovered_by_channel(conn, OCTOBER), "currency", "channel")
    # c4 asked twice (unchanged, then a new expiry), c6 once (a new card); c3's first read
    # of an unknown card is no updater call; c12 is outside the cohort.
    updater = rows["usd", UPDATER]
    assert (updater.calls, updater.hits, updater.cases, updater.amount) == (3, 2, 1, 4000)
    assert updater.share == 4000 / 17000
    assert (rows["eur", UPDATER].calls, rows["eur", UPDATER].hits) == (1, 0)
    assert rows["usd", "retry"].calls is None and rows["usd", SMS].calls is None


def test_the_sms_row_counts_messages_and_the_recoveries_after_one(conn: Connection) -> None:
    rows = _by(recovered_by_channel(conn, OCTOBER), "currency", "channel")
    usd = rows["usd", SMS]
    # Sent: c3, c6 and c1 twice (c2's failed, c12 is outside the cohort). Recovered after
    # an SMS link: c3 only (c6 updated its card but is still open).
    assert (usd.sent, usd.cases, usd.amount, usd.share) == (4, 1, 3000, 3000 / 17000)
    eur = rows["eur", SMS]
    assert (eur.sent, eur.cases, eur.amount, eur.share) == (1, 1, 1500, 1.0)  # paid through it
    # Never added to the channels that charged: c3 is still the customer's recovery.
    assert sum(r.amount for (cur, ch), r in rows.items() if cur == "usd" and ch != SMS) == 17000
    assert rows["usd", "customer"].sent is None


def test_time_to_recovery_and_days(conn: Connection) -> None:
    ttr = _by(time_to_recovery(conn, OCTOBER), "currency")
    assert ttr["usd"].recovered == 5
    assert ttr["usd"].median_hours == pytest.approx(96)
    days = [(d.currency, d.day, d.cases, d.amount) for d in recovery_days(conn, OCTOBER)]
    assert days == [
        ("eur", 1, 1, 1500),
        ("usd", 1, 1, 1000),
        ("usd", 2, 1, 2000),
        ("usd", 4, 1, 3000),
        ("usd", 5, 1, 7000),  # c7: 132 h = 5.5 days
        ("usd", 10, 1, 4000),
    ]


def test_monthly_cohorts(conn: Connection) -> None:
    autumn = Filters(start=date(2026, 9, 1), end=date(2026, 12, 1), currency="usd")
    rows = _by(monthly(conn, autumn), "month")
    sept, octo, nov = rows[date(2026, 9, 1)], rows[date(2026, 10, 1)], rows[date(2026, 11, 1)]
    assert (sept.cases_opened, sept.cases_closed, sept.cases_recovered) == (2, 2, 1)
    assert (sept.failed_amount, sept.recovered_amount) == (4200, 1200)
    assert sept.recovery_rate_amount == 1200 / 4200
    assert (octo.cases_opened, octo.recovery_rate, octo.recovered_amount) == (10, 5 / 9, 17000)
    assert (nov.cases_opened, nov.cases_closed, nov.recovery_rate) == (1, 0, None)


def _counts(rows: list[Any], currency: str = "usd") -> dict[str, tuple[int, int, int]]:
    return {
        r.value: (r.cases_opened, r.cases_closed, r.cases_recovered)
        for r in rows
        if r.currency == currency
    }


def test_breakdown_by_decline_class_uses_the_class_of_the_last_failure(conn: Connection) -> None:
    rows = breakdown(conn, OCTOBER, "decline_class")
    assert _counts(rows) == {
        "insufficient_funds": (4, 3, 2),  # c1, c6 (open), c7 (latest with a class), c9
        "hard": (2, 2, 1),  # c2 (temporary, then hard), c5
        "card_data": (2, 2, 2),  # c3, c4
        "temporary": (1, 1, 0),  # c8
        "unknown": (1, 1, 0),  # c15: no class recorded
    }
    assert sum(r.cases_opened for r in rows if r.currency == "usd") == 10  # c7 once
    hard = next(r for r in rows if r.value == "hard")
    assert (hard.failed_amount, hard.recovered_amount, hard.recovery_rate) == (7000, 2000, 0.5)


def test_breakdown_by_decline_code_and_brand_use_the_first_failure(conn: Connection) -> None:
    codes = _counts(breakdown(conn, OCTOBER, "decline_code"))
    assert codes == {
        "insufficient_funds": (4, 3, 2),
        "expired_card": (2, 2, 2),
        "do_not_honor": (1, 1, 1),
        "stolen_card": (1, 1, 0),
        "generic_decline": (1, 1, 0),
        "card_declined": (1, 1, 0),  # c15: no decline code, its failure code
    }
    brands = _counts(breakdown(conn, OCTOBER, "card_brand"))
    assert brands == {
        "visa": (6, 6, 3),  # c1, c2, c5, c7 (first failure on visa), c8, c9
        "mastercard": (3, 2, 2),
        "unknown": (1, 1, 0),
    }


def test_breakdown_by_plan_segment_and_policy(conn: Connection) -> None:
    assert _counts(breakdown(conn, OCTOBER, "plan")) == {
        "Basic": (4, 4, 3),  # c1, c2, c7, c15
        "Pro": (4, 3, 2),  # c3, c4, c5, c6
        "Pro yearly": (1, 1, 0),
        "unknown": (1, 1, 0),  # c9 has no subscription
    }
    assert _counts(breakdown(conn, OCTOBER, "segment")) == {
        "smb": (5, 5, 3),
        "enterprise": (4, 3, 2),
        "unknown": (1, 1, 0),
    }
    policy = breakdown(conn, OCTOBER, "policy")
    assert _counts(policy) == {"default v1": (6, 6, 3), "paydays v1": (4, 3, 2)}
    assert _counts(policy, "eur") == {"default v1": (1, 1, 1), "paydays v1": (1, 1, 0)}


def test_ab_arms_with_wilson_intervals(conn: Connection) -> None:
    arms = _by(ab_arms(conn, OCTOBER), "policy")
    a, b = arms["default v1"], arms["paydays v1"]
    # Arm A: c1, c3, c5, c7, c9, c15 (usd) and c10 (eur): 7 closed, 4 recovered.
    assert (a.status, a.cases_opened, a.n, a.recovered, a.recovery_rate) == (
        "active",
        7,
        7,
        4,
        4 / 7,
    )
    # Arm B: c2, c4, c6 (open), c8 and c11 (eur): 4 closed, 2 recovered.
    assert (b.status, b.cases_opened, b.n, b.recovered, b.recovery_rate) == (
        "split",
        5,
        4,
        2,
        0.5,
    )
    # Wilson 95 % for 2/4: centre 0.5, half-width 1.96 * sqrt(1/16 + 1.96²/64) / (1 + 1.96²/4).
    z = 1.959963984540054
    half = z * math.sqrt(0.25 / 4 + z * z / 64) / (1 + z * z / 4)
    assert b.ci_low == pytest.approx(0.5 - half) and b.ci_high == pytest.approx(0.5 + half)
    assert (round(b.ci_low, 4), round(b.ci_high, 4)) == (0.15, 0.85)
    assert a.ci_low is not None and a.ci_high is not None
    assert a.ci_low < 4 / 7 < a.ci_high


def test_wilson_interval_known_values() -> None:
    assert wilson_interval(0, 0) is None
    low, high = wilson_interval(0, 10) or (None, None)
    assert low == 0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(81, 263) or (None, None)  # a textbook example
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


def test_email_funnel(conn: Connection) -> None:
    rows = [(r.step, r.template, r.sent, r.link_opened, r.card_updated, r.paid)
            for r in funnel(conn, OCTOBER)]  # fmt: skip
    assert rows == [
        # sent: c3, c4, c6, c5, c7 (c1's was never sent; c12 is outside the cohort);
        # opened: c3, c4 (twice, one email), c7 (card updated through it); updated: c3, c7;
        # paid: both recovered. The SMS (same template and step) are no emails: counted,
        # they would add 5 sent to step 1 (c1 twice, c3, c6, c10).
        (1, "payment_failed", 5, 3, 2, 2),
        (2, "payment_reminder", 1, 1, 1, 0),  # c6 updated its card, still open
        (None, "final_notice", 1, 0, 0, 0),  # c5; its "recovered" email is no step
    ]


def test_email_funnel_of_a_segment(conn: Connection) -> None:
    """The cohort's filters apply to the funnel: smb is c1, c2, c5, c7, c15, c10 and c11."""
    smb = OCTOBER.model_copy(update={"segment": "smb"})
    rows = [(r.step, r.template, r.sent, r.link_opened, r.card_updated, r.paid)
            for r in funnel(conn, smb)]  # fmt: skip
    assert rows == [
        (1, "payment_failed", 2, 1, 1, 1),  # c5's, and c7's (card updated, recovered)
        (None, "final_notice", 1, 0, 0, 0),  # c5; c1's email was never sent
    ]


def test_churn_table(conn: Connection) -> None:
    rows = _by(churn(conn, OCTOBER), "currency")
    usd = rows["usd"]
    assert (usd.active_at_start, usd.started_in_period, usd.churned) == (14, 2, 3)
    assert usd.churn_rate == 3 / 16
    mrr = 1000 + 2000 + 3000 + 4000 + 5000 + 6000 + 7000 + 10000 + 1200 + 1300 + 3000 + 1100
    mrr += 2000 + 24000 // 12  # sub_trial, sub_year: no invoice, active by their start date
    live = mrr + 8888 + 500  # sub_new, sub_oct
    assert (usd.mrr_at_start, usd.mrr_live, usd.churned_mrr) == (mrr, live, 18000)
    assert usd.mrr_churn_rate == 18000 / live
    # EUR: no start dates, so the fallback: both had an invoice before Oct 1.
    assert (rows["eur"].active_at_start, rows["eur"].mrr_at_start) == (2, 4000)


def test_churn_by_start_date_counts_what_invoices_cannot_show(conn: Connection) -> None:
    """The start date decides where the ledger has one, whatever the invoices say."""
    september = Filters(start=date(2026, 9, 1), end=date(2026, 10, 1), currency="usd")
    [sept] = churn(conn, september)
    # Active on Sept 1: the twelve June subscriptions, sub_old (canceled Sept 15), sub_year;
    # started in September: sub_trial (Sept 20). Not sub_inc (incomplete), not sub_new/oct.
    assert (sept.active_at_start, sept.started_in_period, sept.churned) == (14, 1, 0)
    # Nov 3 is after October: sub_nov is not live in it, but it is in November.
    [nov] = churn(conn, Filters(start=date(2026, 11, 1), end=date(2026, 12, 1), currency="usd"))
    assert nov.started_in_period == 1
    # A subscription canceled on the period's first instant was still live at its start.
    conn.execute(text("UPDATE subscriptions SET canceled_at = :t WHERE id = 'sub_year'"),
                 {"t": at(10, 1)})  # fmt: skip
    [october] = churn(conn, OCTOBER.model_copy(update={"currency": "usd"}))
    assert october.active_at_start == 14


def test_churn_without_start_dates_falls_back_to_invoices(conn: Connection) -> None:
    """Rows not yet refreshed from the processor: an invoice before the period says active
    at its start, one before its end says live; subscriptions with no invoice are not."""
    conn.execute(text("UPDATE subscriptions SET start_date = NULL"))
    usd = _by(churn(conn, OCTOBER), "currency")["usd"]
    # sub_1-8, 12-15 active (an invoice in September); sub_new started (first invoice Oct 5);
    # sub_trial, sub_year and sub_oct have no invoice: not counted.
    assert (usd.active_at_start, usd.started_in_period, usd.churned) == (12, 1, 3)
    assert usd.churn_rate == 3 / 13


def test_churn_has_a_rate_when_every_subscription_started_in_the_period(
    conn: Connection,
) -> None:
    """A new install (no start dates yet): no subscription had an invoice before the
    period, yet they exist."""
    conn.execute(text("UPDATE subscriptions SET start_date = NULL"))
    september = Filters(start=date(2026, 9, 1), end=date(2026, 10, 1))
    usd = _by(churn(conn, september), "currency")["usd"]
    assert usd.active_at_start == 0 and usd.started_in_period > 0
    assert usd.churn_rate is not None
    [headline_usd] = [r for r in headline(conn, september) if r.currency == "usd"]
    assert headline_usd.involuntary_churn_rate == usd.churn_rate


def test_at_risk_renewals(conn: Connection) -> None:
    as_of = at(11, 1)
    rows = at_risk(conn, OCTOBER, as_of)
    # sub_10 (EUR, card through Oct 2026, renews Nov 5) and sub_2 (its own card pm_old,
    # through Oct, renews Nov 10, upcoming invoice 21.00). Not sub_1 (card through Nov 30),
    # sub_3 (card 2030), sub_6 (cancels at period end), sub_7 (renews after 30 days).
    assert [(r.subscription_id, r.amount, r.currency, r.card_expires) for r in rows] == [
        ("sub_10", 1500, "eur", "2026-10"),
        ("sub_2", 2100, "usd", "2026-10"),
    ]
    summary = {(r.currency, r.subscriptions, r.amount) for r in
               at_risk_summary(conn, OCTOBER, as_of)}  # fmt: skip
    assert summary == {("eur", 1, 1500), ("usd", 1, 2100)}
    usd_only = OCTOBER.model_copy(update={"currency": "usd"})
    assert [r.subscription_id for r in at_risk(conn, usd_only, as_of)] == ["sub_2"]


def test_an_empty_period_reports_nothing(conn: Connection) -> None:
    empty = Filters(start=date(2020, 1, 1), end=date(2020, 2, 1))
    assert recovered_by_channel(conn, empty) == []
    assert funnel(conn, empty) == []
    assert all(r.cases_opened == 0 for r in headline(conn, empty))
