"""The whole customer journey in one visit: a failing renewal mails the first notice
(real SMTP server), the link in that email opens the update page in headless Chromium,
a good card pays the invoice at localstripe, the case closes as recovered by the
customer, and the thank-you email goes out."""

from __future__ import annotations

import re

from dunning.events.reconcile import reconcile
from dunning.processors.stripe_adapter import StripeAdapter
from dunning.scheduler import sweeper
from tests.support import sandbox
from tests.support.browser import Phone, fill_card
from tests.support.ledger import all_handled, rows, scalar, wait_until
from tests.support.servers import WebServer
from tests.support.smtp import Catcher, parts

_LINK = re.compile(r"https?://[^\s\"<>]+/pay/[A-Za-z0-9_\-]+")


def _settled() -> bool:
    return (
        scalar("SELECT count(*) FROM scheduled_actions WHERE status IN ('claimed', 'running')") == 0
    )


def test_from_the_first_notice_to_a_paid_invoice_and_a_thank_you(
    site: WebServer, processor: str, celery_worker: object, smtp: Catcher, phone: Phone
) -> None:
    sdk = sandbox.client(processor)
    customer_id, _ = sandbox.subscribe(sdk, sandbox.FAILING_CARD)
    reconcile(StripeAdapter(sandbox.API_KEY, processor))
    wait_until(all_handled, what="the failure applied")
    [case] = rows("SELECT id, invoice_id FROM dunning_cases WHERE customer_id = :c", c=customer_id)
    [first] = rows(
        "SELECT due_at FROM scheduled_actions WHERE dedupe_key = :k", k=f"case:{case['id']}:email:0"
    )
    sweeper.sweep(first["due_at"])
    [notice] = smtp.wait_for(1)
    text, _ = parts(notice)
    found = _LINK.search(text)
    assert found is not None

    page = phone.page
    response = page.goto(found.group(0))  # the link exactly as the customer got it
    assert response is not None and response.status == 200
    assert page.inner_text("[data-testid=amount]") == "$49.00"
    assert "ending in 0341" in page.inner_text("[data-testid=card-on-file]")
    page.wait_for_selector("#card-element input[placeholder=number]")
    fill_card(page, sandbox.GOOD_CARD)
    with page.expect_navigation():
        page.click("#pay-button")
    page.wait_for_selector("[data-testid=message-title]")
    assert phone.errors == []

    [invoice] = sdk.v1.invoices.list(params={"customer": customer_id}).data
    assert invoice.status == "paid"
    [closed] = rows("SELECT state, recovered_by FROM dunning_cases WHERE id = :c", c=case["id"])
    assert closed == {"state": "recovered", "recovered_by": "customer"}
    [thanks] = rows(
        "SELECT due_at FROM scheduled_actions WHERE dedupe_key = :k",
        k=f"case:{case['id']}:email:recovered",
    )
    sweeper.sweep(thanks["due_at"])
    wait_until(_settled, what="the thank-you sent")
    messages = smtp.wait_for(2)
    assert len(messages) == 2
    sent = rows(
        "SELECT template, status FROM notifications WHERE case_id = :c ORDER BY id", c=case["id"]
    )
    assert sent == [
        {"template": "payment_failed", "status": "sent"},
        {"template": "payment_recovered", "status": "sent"},
    ]
    kinds = [
        r["kind"]
        for r in rows("SELECT kind FROM case_events WHERE case_id = :c ORDER BY id", c=case["id"])
    ]
    assert kinds[:2] == ["link_opened", "card_updated"]
