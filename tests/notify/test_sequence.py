"""Planning a case's emails from the engine's decisions, against Postgres."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from dunning.cases import ops
from dunning.db import session_scope
from dunning.notify import delivery
from dunning.policy.activation import DEFAULT_POLICY_FILE
from dunning.policy.models import load_policy
from tests.support.cases import case_row, fail_invoice
from tests.support.ledger import rows
from tests.support.smtp import Catcher

pytestmark = pytest.mark.usefixtures("services")  # reads and writes the ledger


def _emails(case_id: object) -> dict[str, str]:
    return {
        str(r["dedupe_key"]).rsplit(":", 1)[1]: str(r["status"])
        for r in rows(
            "SELECT dedupe_key, status FROM scheduled_actions"
            " WHERE case_id = :c AND kind = 'send_email'",
            c=case_id,
        )
    }


def test_an_authentication_decline_asks_for_action_instead_of_the_first_notice(
    clean_db: None, smtp: Catcher
) -> None:
    fail_invoice("in_auth", created=int(time.time()), reason="authentication_required")
    case = case_row("in_auth")
    later_steps = range(1, len(load_policy(DEFAULT_POLICY_FILE).email_steps))
    assert _emails(case["id"]) == {
        "action_required": "pending",  # supersedes the day-0 notice: one email, not two
        **{str(n): "pending" for n in later_steps},
        "final": "pending",
    }
    [payload] = rows(
        "SELECT payload FROM scheduled_actions WHERE dedupe_key = :k",
        k=f"case:{case['id']}:email:2",
    )
    # The default policy names a template that does not exist: the reminder stands in.
    assert payload["payload"]["template"] == "payment_reminder"

    with session_scope() as session:
        ops.pause(session, case["id"], "tests")
    assert set(_emails(case["id"]).values()) == {"canceled"}
    with session_scope() as session:
        ops.resume(session, case["id"], "tests", datetime.now(UTC))
    assert set(_emails(case["id"]).values()) == {"pending"}


def test_no_emails_are_planned_without_a_way_to_send_them(clean_db: None) -> None:
    fail_invoice("in_quiet", created=int(time.time()))
    assert _emails(case_row("in_quiet")["id"]) == {}


def test_a_case_the_end_action_canceled_gets_the_cancellation_email(
    clean_db: None, smtp: Catcher
) -> None:
    from dunning.cases.models import DunningCase
    from dunning.notify import sequence

    fail_invoice("in_end", created=int(time.time()))
    case_id = case_row("in_end")["id"]
    with session_scope() as session:
        case = session.get(DunningCase, case_id)
        assert case is not None
        case.state, case.closed_at = "canceled", datetime.now(UTC)
        session.flush()
        from dunning.scheduler.schedule import cancel_case_actions

        cancel_case_actions(session, case_id)  # what closing the case does
        sequence.on_end_action(session, case, datetime.now(UTC))
    emails = _emails(case_id)
    assert emails.pop("canceled") == "pending"
    assert set(emails.values()) == {"canceled"}


def test_a_case_opened_before_its_invoice_event_waits_for_the_amount(
    clean_db: None, smtp: Catcher
) -> None:
    """``charge.failed`` can come before ``invoice.payment_failed``: the case opens
    without the invoice's amount, and its first email waits for it instead of failing."""
    from tests.support.smtp import environment

    with environment(DUNNING_EMAIL_HOURS_START="0", DUNNING_EMAIL_HOURS_END="24"):
        _early_charge_then_invoice(smtp)


def _early_charge_then_invoice(smtp: Catcher) -> None:
    """The body of the test above, run with every hour allowed for email: the first
    email is due at once whatever the time of day the suite runs at."""
    from dunning import actions
    from dunning.events.service import handle_event
    from dunning.ledger.models import Customer
    from dunning.scheduler import sweeper
    from tests.support.cases import store
    from tests.support.stripe_events import event, fixture

    now = datetime.now(UTC)
    with session_scope() as session:
        session.add(Customer(id="cus_early", email="early@example.com", time_zone="UTC"))
    charge = fixture(
        "charge", id="ch_early", status="failed", paid=False, customer="cus_early",
        invoice="in_early", created=int(now.timestamp()) - 60, amount=1900,
    )  # fmt: skip
    [pk] = store(event("charge.failed", charge, created=int(now.timestamp()) - 60))
    assert handle_event(pk) == "handled"
    now = datetime.now(UTC) + timedelta(seconds=1)  # the first email is due now
    with session_scope() as session:
        [(action_id, dispatch)] = sweeper.claim(session, now, 10)
    outcome = actions.run_action(None, action_id, dispatch, now)
    assert outcome == "rescheduled: waiting for the invoice's amount"
    assert smtp.messages == []

    invoice = fixture(
        "invoice", id="in_early", customer="cus_early", status="open", attempt_count=1,
        amount_due=1900, currency="usd", charge="ch_early",
    )  # fmt: skip
    [pk] = store(event("invoice.payment_failed", invoice, created=int(now.timestamp()) - 30))
    assert handle_event(pk) == "handled"
    later = now + delivery.CARD_POLL
    with session_scope() as session:
        [(again, dispatch)] = sweeper.claim(session, later, 10)
    assert again == action_id
    assert actions.run_action(None, action_id, dispatch, later) == "sent"
    [message] = smtp.wait_for(1)
    assert "19.00" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
