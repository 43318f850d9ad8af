"""Every reader runs over Stripe's published example objects (current API shape)
and over the 2017 shapes a Stripe-compatible sandbox sends."""

from __future__ import annotations

from datetime import UTC, datetime

from dunning.processors import stripe_objects as so
from tests.support.stripe_events import fixture


def test_customer() -> None:
    rec = so.read_customer(
        fixture("customer", preferred_locales=["es"], metadata={"time_zone": "Europe/Madrid"})
    )
    assert rec.id == "cus_QXg1o8vcGmoR32"
    assert (rec.locale, rec.time_zone, rec.deleted) == ("es", "Europe/Madrid", False)
    assert so.read_customer(fixture("deleted_customer")).deleted


def test_subscription_reads_period_and_price_from_its_items() -> None:
    rec = so.read_subscription(fixture("subscription"))
    assert rec.customer_id == "cus_QXg1o8vcGmoR32"
    assert rec.status == "active"
    assert rec.plan_id == "price_1PgafmB7WZ01zgkW6dKueIc5"
    assert (rec.amount, rec.currency, rec.interval) == (2000, "usd", "month")
    assert rec.current_period_end == datetime.fromtimestamp(976287773, UTC)


def test_subscription_of_the_2017_shape() -> None:
    old = {
        "id": "sub_1",
        "customer": "cus_1",
        "status": "past_due",
        "current_period_end": 1700000000,
        "plan": {
            "id": "pro",
            "amount": 4900,
            "currency": "usd",
            "interval": "year",
            "nickname": "Pro",
        },
        "quantity": 2,
        "default_source": "card_1",
    }
    rec = so.read_subscription(old)
    assert (rec.plan_id, rec.amount, rec.interval, rec.plan_name) == ("pro", 9800, "year", "Pro")
    assert rec.default_payment_method_id == "card_1"


def test_invoice_reads_subscription_from_parent() -> None:
    rec = so.read_invoice(fixture("invoice"))
    assert rec.subscription_id == "subscription"
    assert (rec.amount_due, rec.currency, rec.status) == (1000, "usd", "draft")
    assert rec.next_payment_attempt == datetime.fromtimestamp(1234567890, UTC)
    old = so.read_invoice(
        {
            "id": "in_1",
            "subscription": "sub_1",
            "paid": True,
            "charge": "ch_1",
            "amount_due": 500,
            "currency": "EUR",
            "attempt_count": 2,
        }
    )
    assert (old.subscription_id, old.status, old.charge_id, old.currency) == (
        "sub_1",
        "paid",
        "ch_1",
        "eur",
    )


def test_charge_reads_decline_details_from_outcome() -> None:
    declined = fixture("charge", status="failed", failure_code="card_declined")
    declined["outcome"] = {
        **declined["outcome"],
        "type": "issuer_declined",
        "reason": "insufficient_funds",
        "network_decline_code": "51",
        "advice_code": "try_again_later",
        "network_advice_code": "24",
    }
    rec = so.read_charge(declined)
    assert not rec.succeeded
    assert (rec.failure_code, rec.decline_code) == ("card_declined", "insufficient_funds")
    assert (rec.network_decline_code, rec.advice_code, rec.network_advice_code) == (
        "51",
        "try_again_later",
        "24",
    )
    assert (rec.card_brand, rec.card_last4, rec.card_fingerprint) == (
        "visa",
        "4242",
        "AOB934RVNwzk6xtn",
    )
    assert so.read_charge(fixture("charge")).succeeded


def test_payment_method_and_legacy_card() -> None:
    pm = so.read_payment_method(fixture("payment_method"))
    assert (pm.brand, pm.last4, pm.exp_month, pm.exp_year) == ("visa", "4242", 8, 2030)
    card = so.read_payment_method(fixture("card", customer="cus_1"))
    assert (card.brand, card.customer_id, card.fingerprint) == ("visa", "cus_1", "AOB934RVNwzk6xtn")


def test_customer_phone() -> None:
    assert so.read_customer(fixture("customer", phone="+33612345678")).phone == "+33612345678"
    assert so.read_customer(fixture("customer", phone=None)).phone is None
    assert so.read_customer(fixture("customer", phone="+1" + "5" * 40)).phone is None


def test_subscription_start_date_else_created() -> None:
    rec = so.read_subscription(fixture("subscription", start_date=1_700_000_000, created=1))
    assert rec.start_date == datetime.fromtimestamp(1_700_000_000, UTC)
    rec = so.read_subscription(fixture("subscription", start_date=None, created=1_600_000_000))
    assert rec.start_date == datetime.fromtimestamp(1_600_000_000, UTC)


def test_invoice_payment_names_its_invoice_and_payment_intent() -> None:
    obj = fixture(
        "invoice_payment",
        invoice="in_1",
        payment={"type": "payment_intent", "payment_intent": {"id": "pi_1"}},
    )
    rec = so.read_invoice_payment(obj)
    assert (rec.invoice_id, rec.payment_intent_id) == ("in_1", "pi_1")
    assert so.read_invoice_payment(fixture("invoice_payment")).payment_intent_id is None
