"""The Stripe integration, with the official SDK against localstripe on loopback."""

from __future__ import annotations

import uuid

import httpx
import stripe

from dunning.events.reconcile import reconcile
from dunning.processors.stripe_adapter import StripeAdapter
from tests.conftest import WEBHOOK_SECRET
from tests.support.ledger import all_handled, rows, scalar, wait_until
from tests.support.servers import WebServer

FAILING_CARD = "4000000000000341"
GOOD_CARD = "4242424242424242"


def _client(base: str) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_sandbox", base_addresses={"api": base})


def _subscribe(client: stripe.StripeClient, card: str) -> tuple[str, str]:
    """A customer with ``card`` as default, subscribed to a monthly plan."""
    tag = uuid.uuid4().hex[:8]
    customer = client.v1.customers.create(
        params={
            "email": f"{tag}@example.com",
            "name": f"Customer {tag}",
            "metadata": {"time_zone": "America/New_York"},
        }
    )
    pm = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": card, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        }
    )
    client.v1.payment_methods.attach(pm.id, params={"customer": customer.id})
    client.v1.customers.update(
        customer.id, params={"invoice_settings": {"default_payment_method": pm.id}}
    )
    product = client.v1.products.create(params={"name": f"Pro {tag}"})
    plan = client.v1.plans.create(
        params={
            "id": f"pro-{tag}",
            "amount": 4900,
            "currency": "usd",
            "interval": "month",
            "product": product.id,
        }
    )
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"plan": plan.id}]}
    )
    return customer.id, sub.id


def test_a_failing_card_gives_an_open_invoice_and_the_reconciler_opens_a_case(
    stripe_base: str, clean_db: None, celery_worker: object
) -> None:
    client = _client(stripe_base)
    customer_id, sub_id = _subscribe(client, FAILING_CARD)
    [invoice] = client.v1.invoices.list(params={"customer": customer_id}).data
    assert invoice.status == "open" and invoice.attempt_count == 1
    charge = invoice.to_dict()["charge"]
    assert charge["status"] == "failed" and charge["failure_code"] == "card_declined"

    assert reconcile(StripeAdapter("sk_test_sandbox", stripe_base)) >= 2
    wait_until(all_handled, what="reconciled events applied")
    [case] = rows(
        "SELECT state, amount, currency, subscription_id FROM dunning_cases WHERE customer_id = :c",
        c=customer_id,
    )
    assert case == {"state": "open", "amount": 4900, "currency": "usd", "subscription_id": sub_id}
    [attempt] = rows(
        "SELECT attempt_number, outcome, failure_code, charge_id FROM charge_attempts"
        " WHERE customer_id = :c",
        c=customer_id,
    )
    assert attempt == {
        "attempt_number": 1,
        "outcome": "failed",
        "failure_code": "card_declined",
        "charge_id": charge["id"],
    }
    # A second pass finds nothing new: findings are keyed, stored once.
    before = scalar("SELECT count(*) FROM processor_events")
    reconcile(StripeAdapter("sk_test_sandbox", stripe_base))
    assert scalar("SELECT count(*) FROM processor_events") == before


def test_webhooks_sent_by_the_sandbox_are_accepted_and_applied(
    stripe_base: str, web: WebServer, celery_worker: object
) -> None:
    httpx.post(
        f"{stripe_base}/_config/webhooks/test",
        data={"url": f"{web.url}/webhooks/stripe", "secret": WEBHOOK_SECRET},
    ).raise_for_status()
    client = _client(stripe_base)
    customer_id, sub_id = _subscribe(client, GOOD_CARD)

    def applied() -> bool:
        return bool(
            scalar(
                "SELECT count(*) FROM customers WHERE id = :c AND email IS NOT NULL", c=customer_id
            )
            and scalar(
                "SELECT count(*) FROM subscriptions WHERE id = :s AND status = 'active'", s=sub_id
            )
            and scalar(
                "SELECT count(*) FROM invoices WHERE subscription_id = :s AND status = 'paid'",
                s=sub_id,
            )
        )

    wait_until(applied, timeout=30, what="sandbox webhooks applied")
    wait_until(all_handled, what="all events handled")
    failed = scalar("SELECT count(*) FROM processor_events WHERE status = 'failed'")
    assert failed == 0
    assert scalar("SELECT count(*) FROM dunning_cases WHERE customer_id = :c", c=customer_id) == 0
