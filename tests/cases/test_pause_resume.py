"""A case the end action paused: any later payment of its invoice recovers it and plans
the resume of the subscription's collection, once (the e2e test covers the calls)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import update

from dunning import actions
from dunning.cases import service as cases
from dunning.cases.models import DunningCase
from dunning.db import session_scope
from dunning.ledger import apply
from dunning.ledger.models import Subscription
from dunning.processors.stripe_adapter import StripeAdapter
from dunning.scheduler import sweeper
from tests.support.cases import case_row, fail_invoice
from tests.support.ledger import rows, scalar
from tests.support.servers import free_port
from tests.support.stripe_events import fixture


def _paused_case(invoice_id: str) -> tuple[int, str]:
    """A failed invoice whose case ended with Stripe's collection paused."""
    fail_invoice(invoice_id, created=int(time.time()) - 60)
    case_id = int(case_row(invoice_id)["id"])
    sub_id = str(scalar("SELECT subscription_id FROM dunning_cases WHERE id = :c", c=case_id))
    with session_scope() as session:  # what EndCase records after Stripe paused collection
        session.execute(
            update(DunningCase)
            .where(DunningCase.id == case_id)
            .values(end_action="pause_subscription")
        )
        session.execute(
            update(Subscription).where(Subscription.id == sub_id).values(pause_behavior="void")
        )
        cases.on_invoice_changed(session, invoice_id)
    return case_id, sub_id


def _resume_actions(case_id: int) -> list[dict[str, object]]:
    return rows(
        "SELECT id, dedupe_key, status, result FROM scheduled_actions"
        " WHERE case_id = :c AND kind = 'resume_subscription'",
        c=case_id,
    )


def test_a_paused_case_paid_later_recovers_and_plans_one_resume(clean_db: None) -> None:
    case_id, _ = _paused_case("in_pz")
    assert case_row("in_pz")["state"] == "paused"
    assert _resume_actions(case_id) == []  # nothing to resume while unpaid

    paid = fixture(
        "invoice", id="in_pz", customer="cus_ops", status="paid", amount_paid=1000, charge=None
    )
    for _ in range(2):  # the payment event, and its redelivery
        with session_scope() as session:  # Stripe's own retry paid it (invoice.paid)
            apply.apply_invoice(session, paid, int(time.time()) + 10)
            cases.on_invoice_changed(session, "in_pz")
    assert case_row("in_pz")["state"] == "recovered"
    [action] = _resume_actions(case_id)
    assert (action["dedupe_key"], action["status"]) == (f"case:{case_id}:resume", "pending")


def test_a_subscription_no_longer_paused_is_not_resumed_again(clean_db: None) -> None:
    case_id, sub_id = _paused_case("in_py")
    paid = fixture(
        "invoice", id="in_py", customer="cus_ops", status="paid", amount_paid=1000, charge=None
    )
    with session_scope() as session:
        apply.apply_invoice(session, paid, int(time.time()) + 10)
        cases.on_invoice_changed(session, "in_py")
        session.execute(  # resumed at Stripe meanwhile (e.g. from the dashboard)
            update(Subscription).where(Subscription.id == sub_id).values(pause_behavior=None)
        )
    [action] = _resume_actions(case_id)
    now = datetime.now(UTC)
    with session_scope() as session:
        claimed = dict(sweeper.claim(session, now, 10))
    nowhere = StripeAdapter("sk_test_x", f"http://127.0.0.1:{free_port()}")  # any call fails
    action_id = int(str(action["id"]))
    result = actions.run_action(nowhere, action_id, claimed[action_id], now)
    assert result == "not paused: nothing to resume"
    [done] = _resume_actions(case_id)
    assert done["status"] == "done"
