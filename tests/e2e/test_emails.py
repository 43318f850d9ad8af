"""Dunning emails end to end: Postgres, Redis, a Celery worker, localstripe and a real
SMTP server (aiosmtpd) in the test process, with the sweeper driven by a test clock."""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import text

from dunning import actions, queue
from dunning.db import session_scope
from dunning.events.reconcile import reconcile
from dunning.formatting import format_local_date
from dunning.ledger import apply
from dunning.notify import reminders
from dunning.policy.activation import DEFAULT_POLICY_FILE
from dunning.policy.models import load_policy
from dunning.processors import stripe_objects as so
from dunning.processors.stripe_adapter import StripeAdapter
from dunning.scheduler import sweeper
from tests.support import sandbox
from tests.support.admin import bearer, make_key
from tests.support.ledger import all_handled, rows, scalar, wait_until
from tests.support.servers import WebServer
from tests.support.smtp import Catcher, environment, parts

_LINK = re.compile(r"https?://[^\s\"<>]+/pay/[A-Za-z0-9_\-]+")


def _open_case(base: str) -> dict[str, Any]:
    """A subscription whose first charge failed, found by the reconciler; its case."""
    sdk = sandbox.client(base)
    customer_id, _ = sandbox.subscribe(sdk, sandbox.FAILING_CARD)
    reconcile(StripeAdapter(sandbox.API_KEY, base))
    wait_until(all_handled, what="reconciled events applied")
    [case] = rows(
        "SELECT c.id, c.invoice_id, c.customer_id, c.state, u.email FROM dunning_cases c"
        " JOIN customers u ON u.id = c.customer_id WHERE c.customer_id = :c",
        c=customer_id,
    )
    return case


def _email_action(case_id: object, step: str) -> dict[str, Any]:
    [action] = rows(
        "SELECT id, status, due_at, attempts, result FROM scheduled_actions WHERE dedupe_key = :k",
        k=f"case:{case_id}:email:{step}",
    )
    return action


def _notifications(case_id: object) -> list[dict[str, Any]]:
    return rows(
        "SELECT id, dedupe_key, template, status, provider_id, attempts, error, locale"
        " FROM notifications WHERE case_id = :c ORDER BY id",
        c=case_id,
    )


def _settled() -> bool:
    return (
        scalar("SELECT count(*) FROM scheduled_actions WHERE status IN ('claimed', 'running')") == 0
    )


def _sweep(now: datetime) -> int:
    sent = sweeper.sweep(now)
    wait_until(_settled, what="dispatched actions performed")
    return sent


def test_a_failed_renewal_mails_the_first_notice_with_the_update_link(
    processor: str, clean_db: None, celery_worker: object, smtp: Catcher
) -> None:
    case = _open_case(processor)
    keys = {
        r["dedupe_key"]
        for r in rows(
            "SELECT dedupe_key FROM scheduled_actions WHERE case_id = :c AND kind = 'send_email'",
            c=case["id"],
        )
    }
    steps = [str(n) for n in range(len(load_policy(DEFAULT_POLICY_FILE).email_steps))]
    assert keys == {f"case:{case['id']}:email:{s}" for s in (*steps, "final")}
    first = _email_action(case["id"], "0")
    local = first["due_at"].astimezone(ZoneInfo("America/New_York"))
    assert 8 <= local.hour < 20  # the customer's allowed hours, not 3 a.m.

    _sweep(first["due_at"])
    [message] = smtp.wait_for(1)
    assert message["To"] == case["email"]
    assert message["From"] == "Acme Billing <billing@acme.example>"
    assert message.get_content_type() == "multipart/alternative"
    text, html = parts(message)
    link = _LINK.search(text)
    assert link is not None and link.group(0) in html  # the same link in both parts
    assert "$49.00" in text and "$49.00" in html
    [sent] = _notifications(case["id"])
    assert sent["status"] == "sent" and sent["template"] == "payment_failed"
    assert sent["provider_id"] == message["Message-ID"] and sent["locale"] == "en"
    from dunning.links.tokens import verify

    claims = verify(link.group(0).rsplit("/", 1)[1])
    assert (claims.case_id, claims.customer_id) == (case["id"], case["customer_id"])
    assert claims.notification_id == sent["id"]  # the page can tell which email was opened
    assert _email_action(case["id"], "0")["status"] == "done"


def test_the_same_email_step_is_delivered_once_when_its_task_runs_twice(
    processor: str, clean_db: None, celery_worker: object, smtp: Catcher
) -> None:
    case = _open_case(processor)
    first = _email_action(case["id"], "0")
    now = first["due_at"]
    with session_scope() as session:
        claimed = dict(sweeper.claim(session, now, 10))
    dispatch = claimed[first["id"]]
    # Two workers run the same dispatch at once, then Celery delivers the task twice more.
    outcomes: list[str] = []
    threads = [
        threading.Thread(
            target=lambda: outcomes.append(actions.run_action(None, first["id"], dispatch, now))
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["sent", "skipped: stale or duplicate dispatch"]
    queue.send_run_actions([(first["id"], dispatch), (first["id"], dispatch)], now)
    wait_until(_settled, what="duplicate tasks handled")
    # A redelivery after the send (lease expired, the action dispatched again).
    with session_scope() as session:
        session.execute(
            text(
                "UPDATE scheduled_actions SET status = 'claimed', attempts = attempts + 1"
                " WHERE id = :a"
            ),
            {"a": first["id"]},
        )
    assert actions.run_action(None, first["id"], dispatch + 1, now) == "skipped: already sent"
    smtp.wait_for(1)
    wait_until(_settled, what="all settled")
    assert len(smtp.messages) == 1
    assert [n["status"] for n in _notifications(case["id"])] == ["sent"]


def test_no_reminder_after_recovery_and_a_thank_you_instead(
    processor: str, clean_db: None, celery_worker: object, smtp: Catcher
) -> None:
    sdk = sandbox.client(processor)
    case = _open_case(processor)
    _sweep(_email_action(case["id"], "0")["due_at"])
    smtp.wait_for(1)
    reminder = _email_action(case["id"], "1")
    assert reminder["status"] == "pending"

    sandbox.add_card(sdk, case["customer_id"], sandbox.GOOD_CARD)
    sdk.v1.invoices.pay(case["invoice_id"])
    reconcile(StripeAdapter(sandbox.API_KEY, processor))
    wait_until(all_handled, what="paid invoice applied")
    assert scalar("SELECT state FROM dunning_cases WHERE id = :c", c=case["id"]) == "recovered"
    assert _email_action(case["id"], "1")["status"] == "canceled"
    assert _email_action(case["id"], "final")["status"] == "canceled"

    _sweep(reminder["due_at"])  # day 3 comes: the reminder stays unsent
    messages = smtp.wait_for(2)
    assert len(messages) == 2
    assert [n["template"] for n in _notifications(case["id"])] == [
        "payment_failed",
        "payment_recovered",
    ]
    assert "Thank" in str(messages[1]["Subject"]) or "thank" in parts(messages[1])[0].lower()
    assert _LINK.search(parts(messages[1])[0]) is None  # nothing left to update


def test_transient_smtp_failure_is_retried_later_and_permanent_failure_is_recorded(
    processor: str, celery_worker: object, smtp: Catcher, web: WebServer
) -> None:
    flaky, bouncing = _open_case(processor), _open_case(processor)
    smtp.temp_fail[flaky["email"]] = 1
    smtp.bounce.add(bouncing["email"])
    first = _email_action(flaky["id"], "0")
    _sweep(max(first["due_at"], _email_action(bouncing["id"], "0")["due_at"]))

    postponed = _email_action(flaky["id"], "0")
    assert postponed["status"] == "pending" and postponed["due_at"] > first["due_at"]
    assert "transient" in str(postponed["result"])
    [waiting] = _notifications(flaky["id"])
    assert waiting["status"] == "claimed" and "451" in str(waiting["error"])
    assert smtp.to(flaky["email"]) == []

    _sweep(postponed["due_at"])
    assert len(smtp.to(flaky["email"])) == 1
    [sent] = _notifications(flaky["id"])
    assert sent["status"] == "sent" and sent["attempts"] == 2 and sent["error"] is None

    [failed] = _notifications(bouncing["id"])
    assert failed["status"] == "failed" and "550" in str(failed["error"])
    assert _email_action(bouncing["id"], "0")["status"] == "failed"
    detail = httpx.get(
        f"{web.url}/api/cases/{bouncing['id']}", headers=bearer(make_key("ops"))
    ).json()
    [shown] = detail["notifications"]
    assert shown["status"] == "failed" and "550" in shown["error"]


def test_a_renewal_reminders_link_opens_the_customers_renewal_page(
    processor: str, smtp: Catcher, web: WebServer
) -> None:
    """A renewal reminder has no case: its button is the customer's signed link, which
    opens the renewal it was about (date, amount, card) with a card form."""
    sdk = sandbox.client(processor)
    customer_id, sub_id = sandbox.subscribe(sdk, sandbox.GOOD_CARD)
    adapter = StripeAdapter(sandbox.API_KEY, processor)
    customer = adapter.customer(customer_id)
    pm_id = so.read_customer(customer).default_payment_method_id
    assert pm_id is not None
    with session_scope() as session:  # the ledger, as the customer's webhooks leave it
        version = int(time.time())
        apply.apply_customer(session, customer, version)
        apply.apply_subscription(session, adapter.subscription(sub_id), version)
        apply.apply_payment_method(session, adapter.payment_method(pm_id), version)
    renews_at = scalar("SELECT current_period_end FROM subscriptions WHERE id = :s", s=sub_id)

    with environment(DUNNING_RENEWAL_REMINDERS='{"month": [7]}'):
        week_before = renews_at - timedelta(days=6, hours=12)
        assert reminders.scan(week_before) == 1
        [action] = rows("SELECT id, due_at FROM scheduled_actions WHERE kind = 'send_email'")
        with session_scope() as session:
            claimed = dict(sweeper.claim(session, action["due_at"], 10))
        outcome = actions.run_action(None, action["id"], claimed[action["id"]], action["due_at"])
        assert outcome == "sent"
    [message] = smtp.wait_for(1)
    text, html = parts(message)
    assert "$49.00" in text
    link = _LINK.search(text)
    assert link is not None and link.group(0) in html
    token = link.group(0).rsplit("/", 1)[1]
    [notification] = rows("SELECT id, kind, subscription_id FROM notifications")
    assert notification["kind"] == "renewal" and notification["subscription_id"] == sub_id
    from dunning.links.tokens import CustomerLinkClaims, verify

    claims = verify(token)
    assert isinstance(claims, CustomerLinkClaims)
    assert (claims.customer_id, claims.notification_id) == (customer_id, notification["id"])

    page = httpx.get(f"{web.url}/pay/{token}")
    assert page.status_code == 200
    assert f"Renews on {format_local_date(renews_at, 'America/New_York', 'en')}" in page.text
    assert "$49.00" in page.text and "Visa ending in 4242" in page.text
    assert 'id="card-element"' in page.text and "Save card" in page.text
    assert "Nothing is charged now." in page.text
