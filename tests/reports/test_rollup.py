"""The rollup of settled months never drifts from the ledger: every figure read with it
equals the live query's, also after a case of a rolled-up month changes."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, text

from dunning.db import get_engine
from dunning.reports.dashboard_page import Period, build_page
from dunning.reports.metrics.channels import sms_sent, updater_calls
from dunning.reports.metrics.recovery import (
    not_renewal_cases,
    paid_first_time,
    recovery_percentiles,
)
from dunning.reports.rollup import build
from dunning.reports.schemas import Filters
from dunning.reports.snapshot import reading
from dunning.reports.tables import TABLES
from tests.support.report_ledger import at, insert_ledger

LATER = datetime(2027, 6, 1, tzinfo=at(1, 1).tzinfo)  # September and October are settled
AUTUMN = Filters(start=date(2026, 9, 1), end=date(2026, 11, 1))
PERIODS = [
    AUTUMN,
    Filters(start=date(2026, 10, 1), end=date(2026, 11, 1)),
    Filters(start=date(2026, 9, 12), end=date(2026, 11, 3)),  # a rolled month and live parts
    Filters(start=date(2026, 1, 1), end=date(2027, 1, 1), currency="usd"),
    Filters(start=date(2026, 9, 1), end=date(2026, 11, 1), segment="smb"),  # read live
]
NAMES = [
    "recovery",
    "monthly",
    "recovery-days",
    "channels",
    "time-to-recovery",
    "ab",
    "funnel",
    *(f"breakdown/{d}" for d in ("decline_class", "decline_code", "card_brand", "plan")),
]


@pytest.fixture
def ledger(clean_db: None) -> None:
    """The hand-built ledger, committed: the rollup is built on connections of its own."""
    with get_engine().begin() as conn:
        insert_ledger(conn)


def _figures(conn: Connection, f: Filters) -> dict[str, Any]:
    out: dict[str, Any] = {n: list(TABLES[n].compute(conn, f, LATER)) for n in NAMES}
    out["percentiles"] = recovery_percentiles(conn, f)
    out["paid_first_time"] = paid_first_time(conn, f)
    out["not_renewal"] = not_renewal_cases(conn, f)
    out["sms"] = sms_sent(conn, f)
    out["updater"] = updater_calls(conn, f)
    return out


def _with_rollup(f: Filters) -> dict[str, Any]:
    with reading() as conn:
        return _figures(conn, f)


def _live(f: Filters) -> dict[str, Any]:
    """The figures with no rollup at all: its months deleted in a transaction undone."""
    with get_engine().connect() as conn:
        conn.execute(text("DELETE FROM report_cohort_months"))
        try:
            return _figures(conn, f)
        finally:
            conn.rollback()


def _rolled() -> list[date]:
    with get_engine().connect() as conn:
        return list(
            conn.execute(text("SELECT month FROM report_cohort_months ORDER BY 1")).scalars()
        )


@pytest.mark.parametrize("f", PERIODS, ids=lambda f: f"{f.start}-{f.end}-{f.currency}-{f.segment}")
def test_the_figures_read_with_the_rollup_are_the_live_ones(ledger: None, f: Filters) -> None:
    assert build(get_engine(), Filters(start=date(2026, 1, 1), end=date(2027, 1, 1)), LATER)
    assert date(2026, 10, 1) in _rolled()
    assert _with_rollup(f) == _live(f)


def test_a_late_recovery_deletes_its_month_and_the_next_build_counts_it(ledger: None) -> None:
    build(get_engine(), AUTUMN, LATER)
    assert _rolled() == [date(2026, 9, 1), date(2026, 10, 1)]
    before = _with_rollup(AUTUMN)
    with get_engine().begin() as conn:  # c6, open since October 20, is paid
        conn.execute(
            text(
                "UPDATE dunning_cases SET state = 'recovered', closed_at = :t,"
                " recovered_amount = 6000, recovered_by = 'customer' WHERE id = 6"
            ),
            {"t": at(11, 2)},
        )
    assert _rolled() == [date(2026, 9, 1)]  # October is read live now
    after = _with_rollup(AUTUMN)
    assert after != before
    assert after == _live(AUTUMN)
    assert build(get_engine(), AUTUMN, LATER) == [date(2026, 10, 1)]
    assert _with_rollup(AUTUMN) == after == _live(AUTUMN)


def test_a_change_the_reports_do_not_read_keeps_the_month(ledger: None) -> None:
    build(get_engine(), AUTUMN, LATER)
    with get_engine().begin() as conn:
        conn.execute(text("UPDATE dunning_cases SET paused = true WHERE id = 6"))
    assert _rolled() == [date(2026, 9, 1), date(2026, 10, 1)]


def test_a_new_case_in_a_rolled_month_deletes_it(ledger: None) -> None:
    build(get_engine(), AUTUMN, LATER)
    with get_engine().begin() as conn:
        conn.execute(
            text(
                "INSERT INTO dunning_cases (id, invoice_id, state, amount, currency, opened_at)"
                " VALUES (500, 'in_late', 'open', 100, 'usd', :o)"
            ),
            {"o": at(9, 3)},
        )
    assert _rolled() == [date(2026, 10, 1)]
    assert _with_rollup(AUTUMN) == _live(AUTUMN)


def test_a_month_being_changed_is_not_built_until_the_change_ends(ledger: None) -> None:
    with get_engine().connect() as writer:
        writer.execute(text("UPDATE dunning_cases SET amount = amount + 1 WHERE id = 6"))
        assert build(get_engine(), AUTUMN, LATER) == [date(2026, 9, 1)]  # October is locked
        writer.commit()
    assert build(get_engine(), AUTUMN, LATER) == [date(2026, 10, 1)]
    assert _with_rollup(AUTUMN) == _live(AUTUMN)


def test_the_page_builds_the_settled_months_it_shows(ledger: None) -> None:
    page = build_page(Period(AUTUMN, False), LATER)
    assert _rolled()[-2:] == [date(2026, 9, 1), date(2026, 10, 1)]  # and the trend's
    assert page.headline == _live(AUTUMN)["recovery"]


def test_no_month_is_rolled_up_until_a_day_after_it_ended_whatever_the_period_says(
    ledger: None,
) -> None:
    """The trigger leaves cases opened in the last 12 hours alone (a renewal day's
    writes): a month that recent must never be in the rollup, even for a far ``as_of``."""
    far = datetime(2030, 1, 1, tzinfo=LATER.tzinfo)
    build(get_engine(), Filters(start=date(2026, 1, 1), end=date(2030, 1, 1)), far)
    with get_engine().connect() as conn:
        clock = conn.execute(text("SELECT now()")).scalar_one()
    latest = _rolled()[-1]
    assert date(latest.year + latest.month // 12, latest.month % 12 + 1, 1) <= clock.date()
    assert clock.date() - date(latest.year, latest.month, 1) < timedelta(days=63)


SEPT, OCT = date(2026, 9, 1), date(2026, 10, 1)
_EMAIL = (
    "INSERT INTO notifications (id, dedupe_key, kind, channel, template, case_id, step, status)"
    " VALUES (90, 'late', 'dunning', '{channel}', 'payment_reminder', {case}, 2, 'sent')"
)
_CALL = (
    "INSERT INTO card_updater_requests (case_id, provider, reason, asked_at, result)"
    " VALUES ({case}, 'test', 'before_retry', '2026-10-20', 'new_card')"
)
# A late change to each table a rolled read reads, and the months it leaves rolled up.
LATE_CHANGES = {
    "invoice paid in September, voided": (
        "UPDATE invoices SET status = 'void' WHERE id = 'in_p4'",
        [OCT],
    ),
    "invoice paid in September, paid in November instead": (
        "UPDATE invoices SET paid_at = '2026-11-02 12:00+00' WHERE id = 'in_p4'",
        [OCT],
    ),
    "renewal paid in September, inserted": (
        "INSERT INTO invoices (id, subscription_id, status, billing_reason, amount_due,"
        " amount_paid, currency, paid_at) VALUES ('in_late', 'sub_1', 'paid',"
        " 'subscription_cycle', 100, 100, 'usd', '2026-09-10 00:00+00')",
        [OCT],
    ),
    "invoice of an October case, no renewal after all": (
        "UPDATE invoices SET billing_reason = 'manual' WHERE id = 'in_6'",
        [SEPT],
    ),
    "case opened in November for a renewal paid in September": (
        "INSERT INTO dunning_cases (id, invoice_id, state, amount, currency, opened_at)"
        " VALUES (500, 'in_p4', 'open', 3000, 'usd', '2026-11-03 00:00+00')",
        [OCT],
    ),
    "email to an October case, sent": (_EMAIL.format(channel="email", case=6), [SEPT]),
    "October email that had failed, sent": (
        "UPDATE notifications SET status = 'sent' WHERE id = 6",
        [SEPT],
    ),
    "SMS to a September case, sent": (_EMAIL.format(channel="sms", case=12), [OCT]),
    "September email, link opened": (
        "INSERT INTO case_events (case_id, at, kind, notification_id)"
        " VALUES (12, '2026-10-21', 'card_updated', 8)",
        [OCT],
    ),
    "card-updater call about a September case": (_CALL.format(case=12), [OCT]),
    "card-updater call about an October case, deleted": (
        "DELETE FROM card_updater_requests WHERE case_id = 6",
        [SEPT],
    ),
}


@pytest.mark.parametrize("change", list(LATE_CHANGES))
def test_a_late_change_to_a_table_a_rolled_read_reads_deletes_its_month(
    ledger: None, change: str
) -> None:
    sql, kept = LATE_CHANGES[change]
    assert build(get_engine(), AUTUMN, LATER) == [SEPT, OCT]
    before = _with_rollup(AUTUMN)
    with get_engine().begin() as conn:
        conn.execute(text(sql))
    assert _rolled() == kept
    after = _with_rollup(AUTUMN)
    assert after != before
    assert after == _live(AUTUMN)
    assert build(get_engine(), AUTUMN, LATER) == [m for m in (SEPT, OCT) if m not in kept]
    assert _with_rollup(AUTUMN) == after


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE notifications SET attempts = attempts + 1, error = 'x' WHERE id = 3",
        "UPDATE invoices SET hosted_invoice_url = 'https://x', attempt_count = 9",
        "INSERT INTO notifications (id, dedupe_key, kind, template, case_id, step, status)"
        " VALUES (91, 'queued', 'dunning', 'payment_reminder', 6, 2, 'claimed')",
        "INSERT INTO case_events (case_id, at, kind) VALUES (6, '2026-10-21', 'link_opened')",
        "UPDATE card_updater_requests SET changes = '{\"card\": 1}'",
    ],
)
def test_a_change_no_rolled_read_reads_keeps_the_months(ledger: None, sql: str) -> None:
    build(get_engine(), AUTUMN, LATER)
    with get_engine().begin() as conn:
        conn.execute(text(sql))
    assert _rolled() == [SEPT, OCT]


@pytest.mark.parametrize(
    "sql",
    [
        _EMAIL.format(channel="email", case=6),
        _CALL.format(case=6),
        "UPDATE invoices SET billing_reason = 'manual' WHERE id = 'in_6'",
        "INSERT INTO case_events (case_id, at, kind, notification_id)"
        " VALUES (6, '2026-10-21', 'card_updated', 3)",
    ],
)
def test_a_month_being_written_by_any_table_is_built_only_after_the_write(
    ledger: None, sql: str
) -> None:
    with get_engine().connect() as writer:
        writer.execute(text(sql))
        assert build(get_engine(), AUTUMN, LATER) == [SEPT]  # October is locked
        writer.commit()
    assert build(get_engine(), AUTUMN, LATER) == [OCT]
    assert _with_rollup(AUTUMN) == _live(AUTUMN)
