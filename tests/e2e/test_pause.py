"""Pause instead of cancel, end to end: Postgres, Redis, a Celery worker, the web app,
headless Chromium, and localstripe behind the recording proxy, which answers Stripe's
``pause_collection`` update as documented (localstripe does not know it) and records
what the service sent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from dunning.db import session_scope
from dunning.events.reconcile import reconcile
from dunning.links import tokens
from dunning.policy.activation import DEFAULT_POLICY_FILE, activate
from dunning.policy.store import apply_policy
from dunning.processors.stripe_adapter import StripeAdapter
from dunning.scheduler import sweeper
from tests.support import sandbox
from tests.support.browser import Phone, fill_card
from tests.support.ledger import all_handled, rows, scalar, wait_until
from tests.support.servers import WebServer
from tests.support.stripe_recorder import StripeRecorder, serving_the_service

NOTIFICATION_ID = 7002


@pytest.fixture
def stripe(processor: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeRecorder]:
    """The service (web app and worker) talk to localstripe through the recording proxy."""
    with serving_the_service(processor, monkeypatch) as recorder:
        yield recorder


def _pausing_policy() -> None:
    """The default policy, giving up at once on a hard decline and pausing collection."""
    text = DEFAULT_POLICY_FILE.read_text()
    text = text.replace('name = "default"', 'name = "pausing"').replace(
        "version = 2", "version = 1"
    )
    end = 'end_action = "cancel_subscription"'
    hard = 'action = "wait_for_card"\n\n[classes.card_data]'
    assert end in text and hard in text
    text = text.replace(end, 'end_action = "pause_subscription"\npause_behavior = "keep_as_draft"')
    text = text.replace(hard, 'action = "give_up"\n\n[classes.card_data]')
    with session_scope() as session:
        apply_policy(session, text, "tests")
        activate(session, "pausing", 1, "tests")


def _run_due(case_id: object) -> None:
    assert sweeper.sweep(datetime.now(UTC)) >= 1
    wait_until(
        lambda: (
            scalar(
                "SELECT count(*) FROM scheduled_actions WHERE case_id = :c"
                " AND kind IN ('end_action', 'resume_subscription')"
                " AND status IN ('pending', 'claimed', 'running')",
                c=case_id,
            )
            == 0
        ),
        what="due actions performed",
    )


def test_the_end_action_pauses_and_paying_through_the_link_resumes(
    stripe: StripeRecorder, site: WebServer, celery_worker: object, phone: Phone
) -> None:
    _pausing_policy()
    sdk = sandbox.client(stripe.url)
    customer_id, sub_id = sandbox.subscribe(sdk, sandbox.FAILING_CARD)
    first = str(sdk.v1.customers.retrieve(customer_id).invoice_settings.default_payment_method)  # type: ignore[union-attr]
    stripe.declines[first] = "stolen_card"  # hard: this policy gives up at once
    reconcile(StripeAdapter(sandbox.API_KEY, stripe.url))
    wait_until(all_handled, what="reconciled events applied")
    [case] = rows("SELECT id FROM dunning_cases WHERE customer_id = :c", c=customer_id)

    _run_due(case["id"])  # the end action
    [pause] = stripe.posts(rf"^/v1/subscriptions/{sub_id}$")
    assert pause.form == {"pause_collection[behavior]": "keep_as_draft"}
    assert pause.idempotency_key == f"dunning-case-{case['id']}-end"
    [paused] = rows(
        "SELECT state, end_action, closed_at IS NOT NULL AS closed FROM dunning_cases"
        " WHERE id = :c",
        c=case["id"],
    )
    assert paused == {"state": "paused", "end_action": "pause_subscription", "closed": True}
    assert scalar("SELECT pause_behavior FROM subscriptions WHERE id = :s", s=sub_id) == (
        "keep_as_draft"
    )
    assert scalar("SELECT status FROM subscriptions WHERE id = :s", s=sub_id) != "canceled"
    assert {
        r["kind"] for r in rows("SELECT kind FROM case_decisions WHERE case_id = :c", c=case["id"])
    } == {"give_up"}

    # The customer keeps the account: the link still opens the page, and paying resumes.
    page = phone.page
    response = page.goto(tokens.make_link(case["id"], customer_id, NOTIFICATION_ID))
    assert response is not None and response.status == 200
    assert page.inner_text("[data-testid=amount]") == "$49.00"
    page.wait_for_selector("#card-element input[placeholder=number]")
    fill_card(page, sandbox.GOOD_CARD)
    with page.expect_navigation():
        page.click("#pay-button")
    page.wait_for_selector("[data-testid=message-title]")
    assert page.inner_text("[data-testid=message-title]") == "Thank you, you're all set"
    assert phone.errors == []
    [recovered] = rows("SELECT state, recovered_by FROM dunning_cases WHERE id = :c", c=case["id"])
    assert recovered == {"state": "recovered", "recovered_by": "customer"}
    [resume_action] = rows(
        "SELECT dedupe_key, status FROM scheduled_actions"
        " WHERE case_id = :c AND kind = 'resume_subscription'",
        c=case["id"],
    )
    assert resume_action == {"dedupe_key": f"case:{case['id']}:resume", "status": "pending"}

    _run_due(case["id"])  # the resume
    pause_then_resume = stripe.posts(rf"^/v1/subscriptions/{sub_id}$")
    assert [r.form for r in pause_then_resume] == [
        {"pause_collection[behavior]": "keep_as_draft"},
        {"pause_collection": ""},
    ]
    assert pause_then_resume[1].idempotency_key == f"dunning-case-{case['id']}-resume"
    assert scalar("SELECT pause_behavior FROM subscriptions WHERE id = :s", s=sub_id) is None
    assert sdk.v1.subscriptions.retrieve(sub_id).pause_collection is None
    [done] = rows(
        "SELECT status, result FROM scheduled_actions WHERE kind = 'resume_subscription'"
        " AND case_id = :c",
        c=case["id"],
    )
    assert done == {"status": "done", "result": "resumed: collection restarted"}
