"""Renewal reminders and card-expiring notices, from the ledger to a real SMTP server.

The scan and the sweeper run on a test clock stepped through the days, the actions
are performed by the task's own function, and every email goes through aiosmtpd.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dunning import actions
from dunning.db import session_scope
from dunning.ledger.models import Customer, PaymentMethod, Subscription
from dunning.links import customer as customer_links
from dunning.links import tokens
from dunning.notify import reminders
from dunning.notify.reminders import reminder_day
from dunning.scheduler import sweeper
from tests.support.ledger import rows
from tests.support.smtp import Catcher, environment, parts

pytestmark = pytest.mark.usefixtures("services")  # reads and writes the ledger

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday; US clocks change on March 8
_LINK = re.compile(r"https?://[^\s\"<>]+/pay/([A-Za-z0-9_\-]+)")


def _customer_with_sub(
    name: str,
    time_zone: str,
    renews: datetime,
    *,
    interval: str = "year",
    cancel_at_period_end: bool = False,
    exp: tuple[int, int] = (12, 2031),
    sub_card: bool = False,
) -> str:
    with session_scope() as session:
        session.add(
            Customer(
                id=f"cus_{name}",
                email=f"{name}@example.com",
                name=name.title(),
                time_zone=time_zone,
                locale="en",
                default_payment_method_id=None if sub_card else f"pm_{name}",
            )
        )
        session.add(
            PaymentMethod(
                id=f"pm_{name}",
                customer_id=f"cus_{name}",
                brand="visa",
                last4="4242",
                exp_month=exp[0],
                exp_year=exp[1],
            )
        )
        session.add(
            Subscription(
                id=f"sub_{name}",
                customer_id=f"cus_{name}",
                status="active",
                plan_name="Pro yearly" if interval == "year" else "Pro monthly",
                interval=interval,
                interval_count=1,
                amount=49000 if interval == "year" else 4900,
                currency="usd",
                current_period_end=renews,
                cancel_at_period_end=cancel_at_period_end,
                default_payment_method_id=f"pm_{name}" if sub_card else None,
            )
        )
    return f"sub_{name}"


def _run(start: datetime, days: int, step: timedelta = timedelta(hours=1)) -> None:
    """Beat on a test clock: scan, sweep, and perform what was claimed, step by step."""
    now = start
    while now < start + timedelta(days=days):
        reminders.scan(now)
        reminders.scan(now)  # beat may run twice (two beats): nothing doubles
        with session_scope() as session:
            claimed = sweeper.claim(session, now, 100)
        for action_id, dispatch in claimed:
            actions.run_action(None, action_id, dispatch, now)
        now += step


def _sent(kind: str) -> list[dict[str, object]]:
    return rows(
        "SELECT n.dedupe_key, n.recipient, n.sent_at, c.time_zone FROM notifications n"
        " JOIN customers c ON c.id = n.customer_id WHERE n.kind = :k AND n.status = 'sent'"
        " ORDER BY n.sent_at",
        k=kind,
    )


def _assert_in_allowed_hours(sent: list[dict[str, object]]) -> None:
    for row in sent:
        local = row["sent_at"].astimezone(ZoneInfo(str(row["time_zone"])))  # type: ignore[attr-defined]
        assert 8 <= local.hour < 20, (row["dedupe_key"], local)


def test_reminder_day_picks_the_due_reminder_once() -> None:
    assert [reminder_day(d, [2, 3, 7]) for d in range(9, -1, -1)] == [
        None, None, 7, 7, 7, 7, 3, 2, 2, None,
    ]  # fmt: skip


def test_subscriptions_renewing_in_7_3_and_2_days_get_one_reminder_each(
    clean_db: None, smtp: Catcher
) -> None:
    # Renewals at 08:00 PDT on Mar 9, 13:00 in Shanghai on Mar 5, 10:00 in London on Mar 4.
    la = _customer_with_sub("la", "America/Los_Angeles", T0 + timedelta(days=7, hours=15))
    sh = _customer_with_sub("sh", "Asia/Shanghai", T0 + timedelta(days=3, hours=5))
    ld = _customer_with_sub("ld", "Europe/London", T0 + timedelta(days=2, hours=10))
    _customer_with_sub("monthly", "UTC", T0 + timedelta(days=3), interval="month")
    _customer_with_sub("leaving", "UTC", T0 + timedelta(days=3), cancel_at_period_end=True)

    _run(T0, days=10)

    sent = _sent("renewal")
    keys = sorted(str(r["dedupe_key"]) for r in sent)
    assert keys == sorted(
        [
            f"renewal:{la}:2026-03-09:7",
            f"renewal:{la}:2026-03-09:3",
            f"renewal:{la}:2026-03-09:2",
            f"renewal:{sh}:2026-03-05:3",
            f"renewal:{sh}:2026-03-05:2",
            f"renewal:{ld}:2026-03-04:2",
        ]
    )
    _assert_in_allowed_hours(sent)
    assert len(smtp.messages) == 6
    la_mails = smtp.to("la@example.com")
    assert [m["Subject"] for m in la_mails] == [la_mails[0]["Subject"]] * 3
    text, html = parts(la_mails[0])
    assert "in 7 days, on March 9, 2026" in text and "$490.00" in text
    assert re.search(r"in 2 days", parts(la_mails[2])[0])
    # Each reminder's button is the customer's signed link, tagged with its notification,
    # and opens that subscription's renewal (no case, nothing due).
    for message in la_mails:
        text, html = parts(message)
        link = _LINK.search(text)
        assert link is not None and link.group(0) in html
        claims = tokens.verify(link.group(1))
        assert isinstance(claims, tokens.CustomerLinkClaims)
        assert claims.customer_id == "cus_la"
        assert claims.notification_id == _notification_id(str(message["Message-ID"]))
        assert customer_links.resolve(claims) == customer_links.RenewalTarget(
            "cus_la", la, claims.notification_id
        )


def test_reminders_per_plan_interval_are_configurable(clean_db: None, smtp: Catcher) -> None:
    monthly = _customer_with_sub("m", "UTC", T0 + timedelta(days=3, hours=12), interval="month")
    with environment(DUNNING_RENEWAL_REMINDERS='{"month": [3], "year": [7, 3, 2]}'):
        _run(T0, days=4, step=timedelta(hours=2))
    assert [r["dedupe_key"] for r in _sent("renewal")] == [f"renewal:{monthly}:2026-03-05:3"]


def test_card_expiring_before_the_next_renewal_is_noticed_30_and_7_days_ahead(
    clean_db: None, smtp: Catcher
) -> None:
    renews = datetime(2026, 9, 1, 12, tzinfo=UTC)  # a yearly renewal after the card expires
    _customer_with_sub("exp", "America/New_York", renews, exp=(3, 2026))
    _customer_with_sub("subcard", "Asia/Shanghai", renews, exp=(3, 2026), sub_card=True)
    _customer_with_sub("leaves", "UTC", renews, exp=(3, 2026), cancel_at_period_end=True)
    _customer_with_sub("later", "UTC", renews, exp=(12, 2026))
    with session_scope() as session:  # a spare card, not the one charged, expiring too
        session.add(
            PaymentMethod(
                id="pm_spare", customer_id="cus_later", brand="visa", last4="1111",
                exp_month=3, exp_year=2026,
            )
        )  # fmt: skip

    _run(T0 - timedelta(days=1), days=31, step=timedelta(hours=2))

    sent = _sent("card_expiring")
    assert sorted(str(r["dedupe_key"]) for r in sent) == [
        "card_expiring:pm_exp:2026-03:30",
        "card_expiring:pm_exp:2026-03:7",
        "card_expiring:pm_subcard:2026-03:30",
        "card_expiring:pm_subcard:2026-03:7",
    ]
    _assert_in_allowed_hours(sent)
    first = smtp.to("exp@example.com")[0]
    text, _ = parts(first)
    assert "Visa ending in 4242" in text and "March 2026" in text
    link = _LINK.search(text)
    assert link is not None
    claims = tokens.verify(link.group(1))
    assert claims == tokens.CustomerLinkClaims(
        "cus_exp", _notification_id(str(first["Message-ID"])), claims.expires_at
    )
    assert customer_links.resolve(claims) == customer_links.RenewalTarget(
        "cus_exp", "sub_exp", claims.notification_id
    )


def test_reminders_are_planned_whenever_a_mail_backend_is_configured(
    clean_db: None, smtp: Catcher
) -> None:
    _customer_with_sub("w", "UTC", T0 + timedelta(days=2), interval="week")
    at = T0 + timedelta(hours=9)
    with environment(DUNNING_RENEWAL_REMINDERS='{"week": [2]}'):
        assert reminders.scan(at) == 1  # SMTP (the fixture's server)
        with environment(DUNNING_SMTP_HOST=""):
            assert reminders.scan(at) == 0  # no way to send: nothing planned
        with environment(
            DUNNING_SMTP_HOST="",
            DUNNING_EMAIL_BACKEND="http",
            DUNNING_EMAIL_HTTP_URL="https://mail.example/api",
            DUNNING_EMAIL_HTTP_TOKEN="t",
        ):
            assert reminders.scan(at) == 1


def _notification_id(message_id: str) -> int:
    return int(rows("SELECT id FROM notifications WHERE provider_id = :m", m=message_id)[0]["id"])
