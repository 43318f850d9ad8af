"""The thank-you email as composed from the ledger: the card the payment was charged to
(not the declined one) and the next renewal, as the thank-you page says them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from dunning import models as m
from dunning.brand import Brand
from dunning.db import get_engine, session_scope, table
from dunning.notify.compose import compose
from dunning.notify.render import render_email
from dunning.notify.sequence import DUNNING, RECOVERED
from dunning.settings import get_settings

pytestmark = pytest.mark.usefixtures("services")

NOW = datetime(2026, 3, 10, 15, 0, tzinfo=UTC)
RENEWS = datetime(2026, 4, 1, 3, 0, tzinfo=UTC)  # still March 31 in New York
BRAND = Brand(company_name="Acme", support_email="billing@acme.example")
PAYLOAD = {"kind": DUNNING, "case_id": 1, "template": "payment_recovered", "step": RECOVERED}


def _ledger(*, paid_card: bool, status: str = "past_due") -> None:
    rows = {
        m.Customer: [{"id": "cus_1", "email": "a@example.com", "time_zone": "America/New_York",
                      "default_payment_method_id": "pm_new"}],
        m.PaymentMethod: [{"id": "pm_new", "customer_id": "cus_1", "brand": "mastercard",
                           "last4": "4444"}],
        m.Subscription: [{"id": "sub_1", "customer_id": "cus_1", "status": status,
                          "plan_name": "Pro", "amount": 4900, "currency": "usd",
                          "current_period_end": RENEWS}],
        m.Invoice: [{"id": "in_1", "customer_id": "cus_1", "subscription_id": "sub_1",
                     "status": "paid", "amount_due": 4900, "currency": "usd"}],
        m.DunningCase: [{"id": 1, "invoice_id": "in_1", "customer_id": "cus_1",
                         "subscription_id": "sub_1", "state": "recovered", "amount": 4900,
                         "currency": "usd", "opened_at": NOW - timedelta(days=2),
                         "closed_at": NOW, "recovered_by": "customer",
                         "recovered_amount": 4900}],
        m.ChargeAttempt: [
            {"attempt_key": "ch_bad", "invoice_id": "in_1", "outcome": "failed",
             "attempted_at": NOW - timedelta(days=2), "card_brand": "visa",
             "card_last4": "0341", "triggered_by": "processor"},
            {"attempt_key": "ch_ok", "invoice_id": "in_1", "outcome": "succeeded",
             "attempted_at": NOW, "triggered_by": "customer",
             "card_brand": "visa" if paid_card else None,
             "card_last4": "4242" if paid_card else None},
        ],
        m.Notification: [{"id": 1, "dedupe_key": "case:1:email:0", "kind": "dunning",
                          "template": "payment_failed", "case_id": 1, "step": 0,
                          "status": "sent"}],
    }  # fmt: skip
    with get_engine().begin() as conn:
        for model, values in rows.items():
            conn.execute(insert(table(model)), values)


def test_the_thank_you_names_the_card_charged_and_the_next_renewal(clean_db: None) -> None:
    _ledger(paid_card=True)
    with session_scope() as session:
        composed = compose(session, PAYLOAD, NOW, get_settings())
    context = composed.context
    assert (context["card_brand"], context["card_last4"]) == ("visa", "4242")  # not 0341
    assert context["renewal_date"] == RENEWS  # past due in the ledger, paid: renews
    email = render_email(composed.template, "en", context, brand=BRAND)
    assert "charged to your Visa ending in 4242" in email.text
    assert "Your next renewal is on March 31, 2026." in email.text  # New York's day


def test_a_charge_without_card_details_names_the_card_on_file(clean_db: None) -> None:
    _ledger(paid_card=False, status="canceled")
    with session_scope() as session:
        context = compose(session, PAYLOAD, NOW, get_settings()).context
    assert (context["card_brand"], context["card_last4"]) == ("mastercard", "4444")
    assert context["renewal_date"] is None  # canceled: no renewal to announce
