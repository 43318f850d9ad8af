"""The Stripe integration, with the official SDK against localstripe on loopback."""

from __future__ import annotations

import httpx

from dunning.events.reconcile import reconcile
from dunning.processors.stripe_adapter import StripeAdapter
from tests.support import sandbox
from tests.support.env import WEBHOOK_SECRET
from tests.support.ledger import all_handled, rows, scalar, wait_until
from tests.support.servers import WebServer


def test_a_failing_card_gives_an_open_invoice_and_the_reconciler_opens_a_case(
    stripe_base: str, clean_db: None, celery_worker: object
) -> None:
    client = sandbox.client(stripe_base)
    customer_id, sub_id = sandbox.subscribe(client, sandbox.FAILING_CARD)
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
    client = sandbox.client(stripe_base)
    customer_id, sub_id = sandbox.subscribe(client, sandbox.GOOD_CARD)

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
