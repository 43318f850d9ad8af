"""The thank-you after a payment on the customer's page: the card charged and the next
renewal, right after the payment only, in the customer's language and time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from markupsafe import escape
from sqlalchemy import insert

from dunning import models as m
from dunning.brand import Brand
from dunning.db import get_engine, table
from dunning.links import pages
from dunning.links.messages import MESSAGES
from dunning.links.thanks import ThankYou, thank_you
from dunning.links.tokens import CustomerLinkClaims, LinkClaims

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
RENEWS = datetime(2026, 4, 1, 3, 0, tzinfo=UTC)  # still March 31 in New York
LATER = NOW + timedelta(days=1)
BRAND = Brand(company_name="Acme Cloud", support_email="billing@acme.example")


@pytest.mark.parametrize(
    ("locale", "card", "renewal"),
    [
        ("en", "Paid with Visa ending in 4242.", "Your next renewal is on March 31, 2026."),
        ("es", "Pagado con Visa terminada en 4242.", "el 31 de marzo de 2026."),
        ("zh_CN", "付款银行卡：Visa，尾号 4242。", "2026年3月31日"),  # noqa: RUF001
    ],
)
def test_the_thank_you_page_names_the_card_and_the_renewal(
    locale: str, card: str, renewal: str
) -> None:
    thanks = ThankYou("visa", "4242", RENEWS, "America/New_York", locale)
    html = pages.render_thanks(thanks, locale, BRAND).html
    assert str(escape(MESSAGES[locale]["paid_title"])) in html
    assert card in html and renewal in html


def test_a_thank_you_that_knows_nothing_more_is_the_plain_one() -> None:
    html = pages.render_thanks(ThankYou(None, None, None, "UTC", None), "en", BRAND).html
    assert "paid-card" not in html and "next-renewal" not in html
    assert "Thank you, you&#39;re all set" in html


def _ledger(closed_at: datetime, status: str = "past_due") -> None:
    """Case 1 of cus_1, recovered at ``closed_at`` by a charge on a new Visa; the
    subscription still past due in the ledger (its event has not come yet)."""
    rows = {
        m.Customer: [{"id": "cus_1", "time_zone": "America/New_York", "locale": "es"}],
        m.Subscription: [
            {"id": "sub_1", "customer_id": "cus_1", "status": status, "amount": 4900,
             "currency": "usd", "current_period_end": RENEWS}
        ],
        m.Invoice: [{"id": "in_1", "customer_id": "cus_1", "subscription_id": "sub_1",
                     "status": "paid", "amount_due": 4900, "currency": "usd"}],
        m.DunningCase: [
            {"id": 1, "invoice_id": "in_1", "customer_id": "cus_1", "subscription_id": "sub_1",
             "state": "recovered", "amount": 4900, "currency": "usd",
             "opened_at": closed_at - timedelta(days=2), "closed_at": closed_at,
             "recovered_by": "customer", "recovered_amount": 4900}
        ],
        m.ChargeAttempt: [
            {"attempt_key": "ch_bad", "invoice_id": "in_1", "outcome": "failed",
             "attempted_at": closed_at - timedelta(days=2), "card_brand": "visa",
             "card_last4": "0341", "triggered_by": "processor"},
            {"attempt_key": "ch_ok", "invoice_id": "in_1", "outcome": "succeeded",
             "attempted_at": closed_at, "card_brand": "visa", "card_last4": "4242",
             "triggered_by": "customer"},
        ],
    }  # fmt: skip
    with get_engine().begin() as conn:
        for model, values in rows.items():
            conn.execute(insert(table(model)), values)


def _case_link(case_id: int = 1, customer_id: str = "cus_1") -> LinkClaims:
    return LinkClaims(case_id, customer_id, None, LATER)


def test_right_after_the_payment_the_charged_card_and_the_renewal(clean_db: None) -> None:
    _ledger(closed_at=NOW - timedelta(minutes=2))
    thanks = thank_you(_case_link(), NOW)
    assert thanks == ThankYou("visa", "4242", RENEWS, "America/New_York", "es")
    customer_link = thank_you(CustomerLinkClaims("cus_1", None, LATER), NOW)
    assert customer_link == thanks


def test_later_or_for_someone_else_nothing(clean_db: None) -> None:
    _ledger(closed_at=NOW - timedelta(hours=3))
    assert thank_you(_case_link(), NOW) is None  # an old link opened again: plain page
    assert thank_you(_case_link(customer_id="cus_2"), NOW - timedelta(hours=3)) is None


def test_a_subscription_set_to_end_has_no_next_renewal(clean_db: None) -> None:
    _ledger(closed_at=NOW, status="canceled")
    thanks = thank_you(_case_link(), NOW)
    assert thanks is not None and thanks.renews_at is None and thanks.card_last4 == "4242"
