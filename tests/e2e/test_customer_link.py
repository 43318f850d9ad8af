"""The customer link (no case) end to end: Postgres, Redis, localstripe, a real SMTP
server, the real web app, and headless Chromium (Debian's, driven by Playwright) at
phone size.

A card-expiring notice is planned by the reminder scan and sent by the email task to
the SMTP server; its link opens the customer's renewal page, where a new card is saved
at localstripe as the default, and nothing is charged.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dunning import actions
from dunning.db import session_scope
from dunning.events.reconcile import reconcile
from dunning.formatting import format_local_date
from dunning.ledger import apply
from dunning.links import tokens
from dunning.notify import reminders
from dunning.processors import stripe_objects as so
from dunning.processors.stripe_adapter import StripeAdapter
from dunning.scheduler import sweeper
from tests.support import sandbox
from tests.support.browser import PHONE, Phone, fill_card
from tests.support.ledger import all_handled, rows, scalar, wait_until
from tests.support.servers import WebServer
from tests.support.smtp import Catcher, environment, parts

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "renewal-page.png"
TIME_ZONE = "America/New_York"
EXPIRING_CARD = "5555555555554444"  # charges fine; made to expire at the end of this month
_LINK = re.compile(r"https?://[^\s\"<>]+/pay/[A-Za-z0-9_\-]+")


def _subscriber_with_expiring_card(base: str) -> tuple[str, str, str]:
    """A customer on a $49 monthly plan, paid with a card that expires at the end of this
    month (before the renewal a month from now); the ledger holds what Stripe holds."""
    sdk = sandbox.client(base)
    today = datetime.now(UTC)
    customer_id, sub_id = sandbox.subscribe(
        sdk, EXPIRING_CARD, TIME_ZONE, expires=(today.month, today.year)
    )
    pm_id = str(sdk.v1.customers.retrieve(customer_id).invoice_settings.default_payment_method)  # type: ignore[union-attr]
    [invoice] = sdk.v1.invoices.list(params={"customer": customer_id}).data
    assert invoice.status == "paid"
    _into_ledger(base, customer_id, sub_id)
    return customer_id, sub_id, pm_id


def _into_ledger(base: str, customer_id: str, sub_id: str) -> None:
    """Apply Stripe's current customer, subscription and default card to the ledger, as
    their webhooks would."""
    adapter = StripeAdapter(sandbox.API_KEY, base)
    customer = adapter.customer(customer_id)
    pm_id = so.read_customer(customer).default_payment_method_id
    assert pm_id is not None
    version = int(time.time())
    with session_scope() as session:
        apply.apply_customer(session, customer, version)
        apply.apply_subscription(session, adapter.subscription(sub_id), version)
        apply.apply_payment_method(session, adapter.payment_method(pm_id), version)


def _send_card_expiring_notice(customer_id: str) -> tuple[int, str]:
    """Run the reminder scan now and perform the notice's send action when it is due
    (inside the customer's allowed hours); return the email and its notification id."""
    now = datetime.now(UTC)
    assert reminders.scan(now) >= 1
    [action] = rows(
        "SELECT id, due_at FROM scheduled_actions WHERE kind = 'send_email'"
        " AND payload->>'customer_id' = :c AND payload->>'kind' = 'card_expiring'",
        c=customer_id,
    )
    due = max(action["due_at"], now)
    with session_scope() as session:
        claimed = dict(sweeper.claim(session, due, 10))
    assert actions.run_action(None, action["id"], claimed[action["id"]], due) == "sent"
    [notification] = rows(
        "SELECT id, provider_id FROM notifications WHERE customer_id = :c AND kind = :k",
        c=customer_id,
        k="card_expiring",
    )
    return int(notification["id"]), str(notification["provider_id"])


def _charges(base: str, customer_id: str) -> list[dict[str, object]]:
    return sandbox.charges_of(sandbox.client(base), customer_id)


def test_a_card_expiring_notice_opens_the_renewal_page_and_saves_a_new_card_without_charging(
    site: WebServer, processor: str, smtp: Catcher, phone: Phone
) -> None:
    sdk = sandbox.client(processor)
    customer_id, sub_id, old_pm = _subscriber_with_expiring_card(processor)
    charges_before = _charges(processor, customer_id)
    assert len(charges_before) == 1  # the first invoice, paid with the expiring card

    with environment(DUNNING_CARD_EXPIRING_DAYS="45"):  # whatever today's date
        notification_id, message_id = _send_card_expiring_notice(customer_id)
    [message] = smtp.wait_for(1)
    assert message["Message-ID"] == message_id
    text, html = parts(message)
    found = _LINK.search(text)
    assert found is not None and found.group(0) in html
    link = found.group(0)
    assert link.startswith(f"{site.url}/pay/")
    claims = tokens.verify(link.rsplit("/", 1)[1])
    assert claims == tokens.CustomerLinkClaims(customer_id, notification_id, claims.expires_at)

    renews_at = scalar("SELECT current_period_end FROM subscriptions WHERE id = :s", s=sub_id)
    page = phone.page
    response = page.goto(link)
    assert response is not None and response.status == 200
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "script-src" in response.headers["content-security-policy"]
    assert page.inner_text("[data-testid=amount]") == "$49.00"
    assert page.inner_text("[data-testid=renewal-date]") == (
        f"Renews on {format_local_date(renews_at, TIME_ZONE, 'en')}"
    )
    today = datetime.now(UTC)
    expiry = f"{today.month:02d}/{today.year % 100:02d}"
    # (localstripe calls every card a Visa)
    assert (
        page.inner_text("[data-testid=card-on-file]") == f"Visa ending in 4444 · Expires {expiry}"
    )
    assert "expires before your renewal" in page.inner_text("[data-testid=card-warning]")
    assert page.inner_text("#pay-button") == "Save card"
    page.wait_for_selector("#card-element input[placeholder=number]")
    fill_card(page, sandbox.GOOD_CARD)  # 4242 4242 4242 4242 (localstripe takes no spaces)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    with page.expect_navigation():
        page.click("#pay-button")
    page.wait_for_selector("[data-testid=notice]")
    assert page.url.endswith("?result=saved")
    assert "Your new card is saved" in page.inner_text("[data-testid=notice]")
    assert page.inner_text("[data-testid=card-on-file]") == "Visa ending in 4242 · Expires 12/34"
    assert page.query_selector("[data-testid=card-warning]") is None
    assert phone.errors == []

    # At Stripe: the new card is the customer's default, and nothing was charged.
    customer = sdk.v1.customers.retrieve(customer_id)
    new_pm = str(customer.invoice_settings.default_payment_method)  # type: ignore[union-attr]
    assert new_pm != old_pm
    card = sdk.v1.payment_methods.retrieve(new_pm).card
    assert card is not None and (card.last4, card.exp_month, card.exp_year) == ("4242", 12, 2034)
    assert _charges(processor, customer_id) == charges_before
    assert len(sdk.v1.invoices.list(params={"customer": customer_id}).data) == 1
    # In the ledger: the new default, the change in the audit log, and no case.
    assert (
        scalar("SELECT default_payment_method_id FROM customers WHERE id = :c", c=customer_id)
        == new_pm
    )
    [audit] = rows("SELECT actor, action, target_type, target_id, details FROM audit_log")
    assert audit["actor"] == f"customer:{customer_id}"
    assert (audit["action"], audit["target_type"], audit["target_id"]) == (
        "customer.card_updated",
        "customer",
        customer_id,
    )
    details: dict[str, Any] = audit["details"]
    assert details["subscription"] == sub_id and details["payment_method"] == new_pm
    assert details["notification_id"] == notification_id and details["last4"] == "4242"
    assert scalar("SELECT count(*) FROM dunning_cases") == 0
    assert scalar("SELECT count(*) FROM case_events") == 0

    # A later visit shows the new card on file.
    page.goto(link)
    assert page.inner_text("[data-testid=card-on-file]") == "Visa ending in 4242 · Expires 12/34"
    assert scalar("SELECT count(*) FROM audit_log") == 1
    assert phone.errors == []


def test_a_customer_link_with_an_open_case_pays_it_like_the_case_link(
    site: WebServer, processor: str, celery_worker: object, phone: Phone
) -> None:
    """The customer's renewal failed after the notice went out: the same link now shows
    what is due and pays it with the new card."""
    sdk = sandbox.client(processor)
    customer_id, _ = sandbox.subscribe(sdk, sandbox.FAILING_CARD, TIME_ZONE)
    reconcile(StripeAdapter(sandbox.API_KEY, processor))
    wait_until(all_handled, what="reconciled events applied")
    [case] = rows("SELECT id, state FROM dunning_cases WHERE customer_id = :c", c=customer_id)
    assert case["state"] == "open"

    link = tokens.make_customer_link(customer_id, None)
    page = phone.page
    page.goto(link)
    assert page.inner_text("[data-testid=amount]") == "$49.00"
    assert "Visa ending in 0341" in page.inner_text("[data-testid=card-on-file]")
    assert page.inner_text("#pay-button") == "Save card and pay $49.00"
    page.wait_for_selector("#card-element input[placeholder=number]")
    fill_card(page, sandbox.GOOD_CARD)
    with page.expect_navigation():
        page.click("#pay-button")
    page.wait_for_selector("[data-testid=message-title]")
    assert page.inner_text("[data-testid=message-title]") == "Thank you, you're all set"
    assert phone.errors == []

    [invoice] = sdk.v1.invoices.list(params={"customer": customer_id}).data
    assert invoice.status == "paid"
    [closed] = rows("SELECT state, recovered_by FROM dunning_cases WHERE id = :c", c=case["id"])
    assert closed == {"state": "recovered", "recovered_by": "customer"}
    kinds = rows("SELECT kind FROM case_events WHERE case_id = :c ORDER BY id", c=case["id"])
    assert [k["kind"] for k in kinds] == ["link_opened", "card_updated", "payment_attempted"]
