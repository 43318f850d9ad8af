"""A renewal that needs 3-D Secure, end to end: Postgres, Redis, a Celery worker,
localstripe, a real SMTP server, the real web app and headless Chromium.

localstripe puts the payment intent of a card that always asks for authentication in
``requires_action`` (no charge is made) and emits no event for it; Stripe sends
``invoice.payment_action_required``, so the test posts that event, signed, with the
invoice as localstripe has it. The reconciler, which finds the open invoice first, reads
its payment intent and reports the same (a lost webhook must not lead to a retry).
The action-required email goes out at once; its link opens the page, "Confirm payment"
runs Stripe.js ``confirmCardPayment`` on-session, and localstripe's own 3-D Secure
dialog completes the authentication; the 3178 card is then declined (as at Stripe), and
the customer pays with a new card instead.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from dunning import actions
from dunning.cases import authentication
from dunning.cases.models import DunningCase
from dunning.cases.payloads import ChargePayload, retry_key
from dunning.console import case_view
from dunning.db import session_scope
from dunning.events.reconcile import reconcile
from dunning.links import tokens
from dunning.processors.stripe_adapter import StripeAdapter
from dunning.scheduler import sweeper
from dunning.scheduler.models import ActionKind
from dunning.scheduler.schedule import upsert_action
from tests.support import sandbox
from tests.support.browser import Phone, fill_card
from tests.support.env import WEBHOOK_SECRET
from tests.support.ledger import all_handled, rows, scalar, wait_until
from tests.support.servers import WebServer
from tests.support.smtp import Catcher, parts
from tests.support.stripe_events import event, post

ALWAYS_AUTHENTICATE = "4000002760003184"  # asks for 3-D Secure on every payment, then pays
AUTHENTICATE_THEN_DECLINE = "4000008260003178"  # asks for 3-D Secure, then is declined
_ACTION = "invoice.payment_action_required"
_LINK = re.compile(r"https?://[^\s\"<>]+/pay/[A-Za-z0-9_\-]+")


def _renewal_needing_authentication(site: WebServer, base: str, card: str) -> tuple[str, int]:
    """A subscription whose payment waits for 3-D Secure, reported by the reconciler and
    by Stripe's event; its customer and case."""
    sdk = sandbox.client(base)
    customer_id, _ = sandbox.subscribe(sdk, card)
    [invoice] = sdk.v1.invoices.list(params={"customer": customer_id}).data
    assert invoice.status == "open"
    intent = sdk.v1.payment_intents.retrieve(str(invoice.to_dict()["payment_intent"]))
    assert intent.status == "requires_action"
    reconcile(StripeAdapter(sandbox.API_KEY, base))  # reads the intent: action required
    wait_until(all_handled, what="reconciled events applied")
    assert scalar("SELECT count(*) FROM processor_events WHERE type = :t", t=_ACTION) == 1
    planned = scalar(
        "SELECT count(*) FROM scheduled_actions WHERE kind = 'retry_charge' AND status = 'pending'"
    )
    assert planned == 0  # waiting for the customer: no off-session retry
    payload = event("invoice.payment_action_required", invoice.to_dict())
    assert post(site.url, payload, secret=WEBHOOK_SECRET).status_code == 200
    wait_until(all_handled, what="the action-required event applied")
    case_id = scalar("SELECT id FROM dunning_cases WHERE customer_id = :c", c=customer_id)
    return customer_id, int(case_id)


def _pending(case_id: int) -> dict[str, str]:
    found = rows(
        "SELECT dedupe_key, kind FROM scheduled_actions WHERE case_id = :c AND status = 'pending'",
        c=case_id,
    )
    return {r["dedupe_key"]: r["kind"] for r in found}


def _send_action_required_email(case_id: int, smtp: Catcher) -> str:
    """Sweep at the email's due time; the link in the one email the customer got."""
    [action] = rows(
        "SELECT due_at, payload FROM scheduled_actions WHERE dedupe_key = :k",
        k=f"case:{case_id}:email:action_required",
    )
    assert action["due_at"] <= datetime.now(UTC) + timedelta(days=1)  # now, or its send hours
    sweeper.sweep(max(action["due_at"], datetime.now(UTC)))
    [message] = smtp.wait_for(1)
    wait_until(
        lambda: scalar("SELECT count(*) FROM notifications WHERE status = 'sent'") == 1,
        what="the email recorded sent",
    )
    assert rows("SELECT template FROM notifications WHERE case_id = :c", c=case_id) == [
        {"template": "action_required"}  # the day-0 notice was superseded: one email
    ]
    text, _ = parts(message)
    found = _LINK.search(text)
    assert found is not None
    return found.group(0)


def _retry_is_refused(base: str, case_id: int) -> None:
    """A retry action of the case (as if claimed before the wait began) refuses to charge."""
    key = retry_key(case_id, 2)
    now = datetime.now(UTC)
    with session_scope() as session:
        upsert_action(
            session,
            key=key,
            kind=ActionKind.RETRY_CHARGE,
            due=now,
            payload=ChargePayload(2, "mark_uncollectible").as_json(),
            case_id=case_id,
            revive_any_canceled=True,
        )
    [action] = rows("SELECT id FROM scheduled_actions WHERE dedupe_key = :k", k=key)
    with session_scope() as session:
        claimed = dict(sweeper.claim(session, now, 10))
    adapter = StripeAdapter(sandbox.API_KEY, base)
    result = actions.run_action(adapter, action["id"], claimed[action["id"]], now)
    assert result == authentication.RETRY_REFUSED
    status = scalar("SELECT status FROM scheduled_actions WHERE id = :i", i=action["id"])
    assert status == "canceled"


def _timeline_titles(case_id: int) -> list[str]:
    with session_scope() as session:
        case = session.get(DunningCase, case_id)
        assert case is not None
        return [e.title for e in case_view.timeline(session, case)]


def test_a_renewal_needing_3d_secure_is_confirmed_by_the_customer_on_session(
    site: WebServer, processor: str, celery_worker: object, smtp: Catcher, phone: Phone
) -> None:
    sdk = sandbox.client(processor)
    customer_id, case_id = _renewal_needing_authentication(site, processor, ALWAYS_AUTHENTICATE)
    [case] = rows("SELECT state, awaiting_action_since FROM dunning_cases WHERE id = :c", c=case_id)
    assert case["state"] == "open" and case["awaiting_action_since"] is not None
    pending = _pending(case_id)
    assert ActionKind.RETRY_CHARGE not in pending.values()  # the reconciler's retry is gone
    assert pending[f"case:{case_id}:end"] == ActionKind.END_ACTION
    [decision] = rows(
        "SELECT kind, reason FROM case_decisions WHERE case_id = :c ORDER BY id DESC LIMIT 1",
        c=case_id,
    )
    assert decision["kind"] == "customer_action" and "authenticate" in decision["reason"]
    assert authentication.WAITING in _timeline_titles(case_id)

    link = _send_action_required_email(case_id, smtp)
    _retry_is_refused(processor, case_id)
    assert sandbox.charges_of(sdk, customer_id) == []  # nothing was charged off-session

    page = phone.page
    response = page.goto(link)
    assert response is not None and response.status == 200
    assert page.inner_text("[data-testid=amount]") == "$49.00"
    assert page.inner_text("[data-testid=confirm-button]") == "Confirm payment"
    page.click("[data-testid=confirm-button]")
    with page.expect_navigation():
        page.click("text=Complete authentication")  # localstripe's 3-D Secure dialog
    page.wait_for_selector("[data-testid=message-title]")
    assert page.inner_text("[data-testid=message-title]") == "Thank you, you're all set"
    assert "ending in 3184" in page.inner_text("[data-testid=paid-card]")
    assert phone.errors == []

    [invoice] = sdk.v1.invoices.list(params={"customer": customer_id}).data
    assert invoice.status == "paid"
    [charge] = sandbox.charges_of(sdk, customer_id)  # the one the customer confirmed
    assert charge["status"] == "succeeded"
    [closed] = rows(
        "SELECT state, recovered_by, awaiting_action_since FROM dunning_cases WHERE id = :c",
        c=case_id,
    )
    assert closed == {
        "state": "recovered",
        "recovered_by": "customer",
        "awaiting_action_since": None,
    }
    attempts = rows(
        "SELECT outcome, triggered_by FROM charge_attempts WHERE invoice_id = :i ORDER BY id",
        i=invoice.id,
    )
    assert attempts == [
        {"outcome": "failed", "triggered_by": "processor"},
        {"outcome": "succeeded", "triggered_by": "customer"},
    ]
    events = rows("SELECT kind, details FROM case_events WHERE case_id = :c ORDER BY id", c=case_id)
    assert [e["kind"] for e in events] == ["link_opened", "payment_attempted"]
    assert events[1]["details"]["outcome"] == "paid"
    assert authentication.WAITING not in _timeline_titles(case_id)


def test_a_declined_authentication_leaves_the_case_waiting_until_a_new_card_pays(
    site: WebServer, processor: str, celery_worker: object, smtp: Catcher, phone: Phone
) -> None:
    sdk = sandbox.client(processor)
    customer_id, case_id = _renewal_needing_authentication(
        site, processor, AUTHENTICATE_THEN_DECLINE
    )
    link = _send_action_required_email(case_id, smtp)

    page = phone.page
    page.goto(link)
    page.click("[data-testid=confirm-button]")
    with page.expect_navigation():
        page.click("text=Complete authentication")
    page.wait_for_selector("[data-testid=notice]")
    assert page.url.endswith("?result=declined")
    assert "declined" in page.inner_text("[data-testid=notice]")
    [declined] = sandbox.charges_of(sdk, customer_id)
    assert declined["status"] == "failed"
    assert (
        scalar(
            "SELECT count(*) FROM charge_attempts WHERE triggered_by = 'customer'"
            " AND outcome = 'failed'"
        )
        == 1
    )
    assert scalar(
        "SELECT awaiting_action_since IS NOT NULL FROM dunning_cases WHERE id = :c", c=case_id
    )
    assert ActionKind.RETRY_CHARGE not in _pending(case_id).values()

    page.wait_for_selector("#card-element input[placeholder=number]")
    fill_card(page, sandbox.GOOD_CARD)
    with page.expect_navigation():
        page.click("#pay-button")
    page.wait_for_selector("[data-testid=message-title]")
    assert page.inner_text("[data-testid=message-title]") == "Thank you, you're all set"
    [refused] = phone.errors  # the browser logs localstripe's decline answer, nothing else
    assert "402" in refused and "/_authenticate" in refused
    [closed] = rows("SELECT state, recovered_by FROM dunning_cases WHERE id = :c", c=case_id)
    assert closed == {"state": "recovered", "recovered_by": "customer"}
    assert scalar("SELECT count(*) FROM charge_attempts WHERE triggered_by = 'service'") == 0


def test_a_new_card_whose_bank_asks_to_confirm_is_confirmed_on_the_same_page(
    site: WebServer, processor: str, celery_worker: object, phone: Phone
) -> None:
    """A customer replaces a declined card with one that needs 3-D Secure: the page's
    off-session payment cannot succeed, so the case waits for the customer and the page
    asks them to confirm, which pays."""
    sdk = sandbox.client(processor)
    customer_id, _ = sandbox.subscribe(sdk, sandbox.FAILING_CARD)
    reconcile(StripeAdapter(sandbox.API_KEY, processor))
    wait_until(all_handled, what="reconciled events applied")
    case_id = int(scalar("SELECT id FROM dunning_cases WHERE customer_id = :c", c=customer_id))

    page = phone.page
    page.goto(tokens.make_link(case_id, customer_id, None))
    page.wait_for_selector("#card-element input[placeholder=number]")
    fill_card(page, ALWAYS_AUTHENTICATE)
    with page.expect_navigation():
        page.click("#pay-button")
        page.click("text=Complete authentication")  # the bank checks the card as it is saved
    page.wait_for_selector("[data-testid=notice]")
    assert page.url.endswith("?result=needs_confirmation")
    assert "confirm" in page.inner_text("[data-testid=notice]")
    [waiting] = rows(
        "SELECT awaiting_action_since, decline_class FROM dunning_cases WHERE id = :c", c=case_id
    )
    assert waiting["awaiting_action_since"] is not None
    assert ActionKind.RETRY_CHARGE not in _pending(case_id).values()

    page.click("[data-testid=confirm-button]")
    with page.expect_navigation():
        page.click("text=Complete authentication")
    page.wait_for_selector("[data-testid=message-title]")
    assert page.inner_text("[data-testid=message-title]") == "Thank you, you're all set"
    [closed] = rows("SELECT state, recovered_by FROM dunning_cases WHERE id = :c", c=case_id)
    assert closed == {"state": "recovered", "recovered_by": "customer"}
    assert scalar("SELECT count(*) FROM charge_attempts WHERE triggered_by = 'service'") == 0
