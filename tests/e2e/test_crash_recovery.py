"""Workers that die keep the books right: a dying action is re-planned or failed on the
case (never just stopped), and a thank-you is owed after a notice whose send was lost."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from dunning import actions
from dunning.db import session_scope
from dunning.events.service import handle_event
from dunning.notify import delivery
from dunning.processors.stripe_adapter import StripeAdapter
from dunning.scheduler import runner, sweeper
from dunning.scheduler.models import ActionKind
from dunning.settings import get_settings
from tests.support.cases import case_row, fail_invoice, store
from tests.support.ledger import rows, scalar
from tests.support.smtp import Catcher
from tests.support.stripe_events import event, fixture

# Never called: the runner abandons the action before the handler prepares anything.
UNREACHABLE = StripeAdapter("sk_test_unreachable", "http://127.0.0.1:1")


def _die_in_every_dispatch(action_id: int, at: datetime) -> tuple[int, datetime]:
    """Claim the action, then let its lease expire again and again: each dispatch's
    worker dies before it settles anything. Returns the next dispatch and its clock."""
    dispatch = 0
    for _ in range(1 + runner.MAX_DISPATCHES):
        with session_scope() as session:
            claimed = dict(sweeper.claim(session, at, 100))
        dispatch = claimed[action_id]
        at += sweeper.LEASE + timedelta(seconds=1)
    return dispatch, at - sweeper.LEASE - timedelta(seconds=1)


def test_a_retry_whose_workers_keep_dying_is_planned_again(
    clean_db: None, caplog: pytest.LogCaptureFixture
) -> None:
    fail_invoice("in_dies", created=int(time.time()))
    case_id = case_row("in_dies")["id"]
    [action] = rows(
        "SELECT id, due_at FROM scheduled_actions WHERE case_id = :c AND kind = 'retry_charge'",
        c=case_id,
    )
    dispatch, now = _die_in_every_dispatch(action["id"], action["due_at"])
    outcome = actions.run_action(UNREACHABLE, action["id"], dispatch, now)
    assert outcome.startswith("rescheduled")
    [after] = rows(
        "SELECT status, due_at, crashes FROM scheduled_actions WHERE id = :a", a=action["id"]
    )
    assert after["status"] == "pending" and after["crashes"] == 0
    assert after["due_at"] >= now + timedelta(hours=23)
    assert any("died in" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)


def test_an_email_whose_workers_keep_dying_fails_on_the_case(clean_db: None, smtp: Catcher) -> None:
    fail_invoice("in_mail", created=int(time.time()))
    case_id = case_row("in_mail")["id"]
    [action] = rows(
        "SELECT id, due_at FROM scheduled_actions WHERE dedupe_key = :k",
        k=f"case:{case_id}:email:0",
    )
    dispatch, now = _die_in_every_dispatch(action["id"], max(action["due_at"], datetime.now(UTC)))
    assert actions.run_action(None, action["id"], dispatch, now).startswith("failed")
    assert scalar("SELECT status FROM scheduled_actions WHERE id = :a", a=action["id"]) == "failed"
    assert smtp.messages == []


class _WorkerDied(Exception):
    """Stands for the worker process dying (not an error the runner handles)."""


class _DiesAfterSending(delivery.SendEmail):
    def perform(self, work: delivery.EmailWork) -> str | delivery.Refused:
        super().perform(work)
        raise _WorkerDied


def test_a_notice_sent_by_a_worker_that_died_still_earns_the_thank_you(
    clean_db: None, smtp: Catcher
) -> None:
    created = int(time.time())
    customer = {**fixture("customer", id="cus_ops", email="pat@example.com"), "name": "Pat"}
    [pk] = store(event("customer.created", customer, created=created - 60))
    assert handle_event(pk) == "handled"
    fail_invoice("in_thanks", created=created)
    case_id = case_row("in_thanks")["id"]
    [notice] = rows(
        "SELECT id, due_at FROM scheduled_actions WHERE dedupe_key = :k",
        k=f"case:{case_id}:email:0",
    )
    at = max(notice["due_at"], datetime.now(UTC))
    with session_scope() as session:
        claimed = dict(sweeper.claim(session, at, 100))
    dies = _DiesAfterSending(get_settings())
    with pytest.raises(_WorkerDied):
        runner.run({ActionKind.SEND_EMAIL: dies}, notice["id"], claimed[notice["id"]], at)
    assert len(smtp.wait_for(1)) == 1  # the customer got the notice; we never recorded it

    paid = fixture("invoice", id="in_thanks", customer="cus_ops", status="paid", amount_paid=1000)
    [pk] = store(event("invoice.paid", paid, created=created + 60, event_id="e_paid"))
    assert handle_event(pk) == "handled"
    assert case_row("in_thanks")["state"] == "recovered"
    later = at + sweeper.LEASE + timedelta(seconds=1)
    with session_scope() as session:
        due = dict(sweeper.claim(session, later, 100))
    thanks = scalar(
        "SELECT id FROM scheduled_actions WHERE dedupe_key = :k",
        k=f"case:{case_id}:email:recovered",
    )
    assert actions.run_action(None, int(thanks), due[int(thanks)], later) == "sent"
    # The lost notice is not needed any more, and its row says its outcome is unknown.
    assert actions.run_action(None, notice["id"], due[notice["id"]], later).startswith("canceled")
    statuses = {
        r["template"]: r["status"] for r in rows("SELECT template, status FROM notifications")
    }
    assert statuses == {"payment_failed": "unknown", "payment_recovered": "sent"}


def test_a_notice_refused_for_now_and_then_paid_earns_no_thank_you(
    clean_db: None, smtp: Catcher
) -> None:
    """451 is a known "not sent": a customer who never heard of the failure gets no
    thank-you, even though the notice's row stayed claimed when the case closed."""
    created = int(time.time())
    customer = {**fixture("customer", id="cus_ops", email="lee@example.com"), "name": "Lee"}
    [pk] = store(event("customer.created", customer, created=created - 60))
    assert handle_event(pk) == "handled"
    fail_invoice("in_quiet", created=created)
    case_id = case_row("in_quiet")["id"]
    [notice] = rows(
        "SELECT id, due_at FROM scheduled_actions WHERE dedupe_key = :k",
        k=f"case:{case_id}:email:0",
    )
    at = max(notice["due_at"], datetime.now(UTC))
    smtp.temp_fail["lee@example.com"] = 1
    with session_scope() as session:
        claimed = dict(sweeper.claim(session, at, 100))
    assert actions.run_action(None, notice["id"], claimed[notice["id"]], at).startswith(
        "rescheduled"
    )
    paid = fixture("invoice", id="in_quiet", customer="cus_ops", status="paid", amount_paid=1000)
    [pk] = store(event("invoice.paid", paid, created=created + 60, event_id="e_quiet_paid"))
    assert handle_event(pk) == "handled"
    thanks = scalar(
        "SELECT id FROM scheduled_actions WHERE dedupe_key = :k",
        k=f"case:{case_id}:email:recovered",
    )
    later = at + timedelta(minutes=1)
    with session_scope() as session:
        due = dict(sweeper.claim(session, later, 100))
    outcome = actions.run_action(None, int(thanks), due[int(thanks)], later)
    assert outcome == "canceled: recovered before any dunning email was sent"
    assert smtp.messages == []
