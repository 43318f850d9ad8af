"""Each alert fires once on its condition and again only after it cleared: by email (a
real SMTP server) and as JSON to a webhook (a local HTTP server recording what it gets),
sent with no transaction open, with a link to the console."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, text, update

from dunning.alerts import checks
from dunning.alerts.service import check
from dunning.cases.models import DunningCase
from dunning.db import get_engine, session_scope
from dunning.events.models import ProcessorEvent
from dunning.ledger.models import Invoice
from dunning.scheduler.models import ScheduledAction
from dunning.settings import Settings, get_settings
from tests.alerts.receiver import Receiver
from tests.support.servers import free_port
from tests.support.smtp import Catcher

NOW = datetime.now(UTC).replace(microsecond=0)
ADDRESSES = ["ops@example.com", "oncall@example.com"]
_serial = iter(range(1, 10**6))


def _event(status: str = "pending", age: timedelta = timedelta(minutes=20)) -> None:
    n = next(_serial)
    with session_scope() as session:
        session.execute(
            insert(ProcessorEvent).values(
                processor="stripe",
                event_id=f"evt_alert_{n}",
                type="invoice.payment_failed",
                body="{}",
                headers={},
                received_at=NOW - age,
                status=status,
                error="KeyError: 'customer'" if status == "failed" else None,
            )
        )


def _handle_events() -> None:
    with session_scope() as session:
        session.execute(update(ProcessorEvent).values(status="handled", handled_at=NOW))


def _action(result: str = "failed: processor unavailable", age: timedelta = timedelta(0)) -> None:
    n = next(_serial)
    with session_scope() as session:
        session.execute(
            insert(ScheduledAction).values(
                kind="retry_charge",
                due_at=NOW - age,
                status="failed",
                dedupe_key=f"case:{n}:retry:2",
                completed_at=NOW - age,
                result=result,
            )
        )


def _forget_actions() -> None:
    with session_scope() as session:
        session.execute(update(ScheduledAction).values(status="done", result="charged"))


def _renewals(paid: int, failed: int, at: datetime) -> None:
    """``paid`` renewals paid and ``failed`` renewals whose first charge failed, at ``at``."""
    rows: list[dict[str, Any]] = []
    cases: list[dict[str, Any]] = []
    for _ in range(paid + failed):
        n = next(_serial)
        is_failed = len(rows) >= paid
        rows.append(
            {
                "id": f"in_r{n}",
                "subscription_id": f"sub_r{n}",
                "billing_reason": "subscription_cycle",
                "status": "open" if is_failed else "paid",
                "amount_due": 4900,
                "amount_paid": 0 if is_failed else 4900,
                "currency": "usd",
                "paid_at": None if is_failed else at,
            }
        )
        if is_failed:
            cases.append(
                {"invoice_id": f"in_r{n}", "state": "open", "opened_at": at, "currency": "usd"}
            )
    with session_scope() as session:
        session.execute(insert(Invoice), rows)
        if cases:
            session.execute(insert(DunningCase), cases)


@dataclass(frozen=True)
class Condition:
    """How to make a condition hold and how to clear it."""

    name: str
    arrange: Callable[[], None]
    resolve: Callable[[], None]
    words: str  # in the alert's summary


def _usual_rate() -> None:
    _renewals(paid=100, failed=4, at=NOW - timedelta(days=10))  # 3.8 % over 4 weeks


CONDITIONS = [
    Condition("webhook_backlog", _event, _handle_events, "webhook events waiting"),
    Condition("failed_events", lambda: _event("failed"), _handle_events, "webhook events failed"),
    Condition("failed_actions", _action, _forget_actions, "scheduled actions failed"),
    Condition(
        "renewal_failure_rate",
        lambda: _renewals(paid=20, failed=10, at=NOW - timedelta(hours=1)),  # 33 %
        lambda: _renewals(paid=300, failed=0, at=NOW - timedelta(hours=2)),  # back to 3 %
        "renewal failure rate",
    ),
]


@pytest.fixture
def alerting(smtp: Catcher, receiver: Receiver) -> Iterator[Settings]:
    yield get_settings().model_copy(
        update={
            "alert_emails": ADDRESSES,
            "alert_webhook_url": receiver.url,
            "public_url": "https://billing.example.com",
        }
    )


def _no_lock_held() -> None:
    """Run while the webhook is being sent: no transaction may hold an alert row."""
    with get_engine().connect() as conn:
        conn.execute(text("SET lock_timeout = '1ms'"))
        conn.execute(text("SELECT 1 FROM alert_states FOR UPDATE NOWAIT"))
        conn.rollback()


@pytest.mark.parametrize("condition", CONDITIONS, ids=[c.name for c in CONDITIONS])
def test_each_alert_fires_once_and_again_only_after_it_cleared(
    condition: Condition, alerting: Settings, smtp: Catcher, receiver: Receiver
) -> None:
    _usual_rate()
    receiver.during = _no_lock_held
    assert check(NOW, alerting, probe=None).started == []  # all quiet

    condition.arrange()
    first = check(NOW, alerting, probe=None)
    assert first.started == [condition.name] and first.errors == []
    assert sorted(first.sent) == [f"{condition.name}:email", f"{condition.name}:webhook"]
    assert receiver.conditions() == [(condition.name, 1)]
    [post] = receiver.posts
    assert condition.words in post["text"]
    assert (
        post["alert"]["console_url"]
        == f"https://billing.example.com/console/alerts#{condition.name}"
    )
    assert post["text"].endswith(f"<{post['alert']['console_url']}>")  # Slack's link syntax
    mails = smtp.wait_for(2)
    assert sorted(m["To"] for m in mails) == sorted(ADDRESSES)
    assert all(condition.words in m["Subject"] for m in mails)
    text_part = mails[0].get_body(("plain",))
    assert text_part is not None and "billing.example.com/console/alerts" in text_part.get_content()

    for minutes in (5, 10):  # still true: nothing more is sent
        again = check(NOW + timedelta(minutes=minutes), alerting, probe=None)
        assert again.firing == [condition.name] and again.started == [] and again.sent == []
    condition.arrange()  # worse still: the same episode
    assert check(NOW, alerting, probe=None).sent == []

    condition.resolve()
    cleared = check(NOW, alerting, probe=None)
    assert cleared.cleared == [condition.name] and cleared.sent == []
    assert check(NOW, alerting, probe=None).cleared == []

    condition.arrange()
    if condition.name == "renewal_failure_rate":
        _renewals(paid=0, failed=200, at=NOW - timedelta(hours=1))
    second = check(NOW, alerting, probe=None)
    assert second.started == [condition.name]
    assert receiver.conditions() == [(condition.name, 1), (condition.name, 2)]
    assert len(smtp.wait_for(4)) == 4


def test_the_processor_being_unreachable_fires_once_until_it_answers(
    alerting: Settings, stripe_base: str, receiver: Receiver
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    down = alerting.model_copy(update={"stripe_api_key": "sk_test_x", "stripe_api_base": closed})
    up = down.model_copy(update={"stripe_api_base": stripe_base})
    assert checks.processor_reachable(up) is None  # localstripe answers "no such customer"

    assert check(NOW, down).started == ["processor_unreachable"]
    assert check(NOW, down).started == []
    assert check(NOW, up).cleared == ["processor_unreachable"]
    assert check(NOW, down).started == ["processor_unreachable"]
    assert receiver.conditions() == [("processor_unreachable", 1), ("processor_unreachable", 2)]
    assert "cannot be reached" in receiver.posts[0]["text"]


def test_a_channel_that_failed_is_tried_again_alone(
    alerting: Settings, smtp: Catcher, receiver: Receiver
) -> None:
    _event()
    receiver.fail_next = 1
    first = check(NOW, alerting, probe=None)
    assert first.sent == ["webhook_backlog:email"] and "HTTP 500" in first.errors[0]
    second = check(NOW + timedelta(minutes=5), alerting, probe=None)
    assert second.sent == ["webhook_backlog:webhook"] and second.errors == []
    assert receiver.conditions() == [("webhook_backlog", 1)]
    assert len(smtp.wait_for(2)) == 2
    assert check(NOW + timedelta(minutes=10), alerting, probe=None).sent == []


def test_old_failures_and_skipped_emails_raise_nothing(alerting: Settings) -> None:
    _action(age=timedelta(hours=30))  # older than the 24 h window
    _action(result="skipped: notification sent")  # an email that had nothing left to do
    _event(age=timedelta(minutes=2))  # waiting, but not for long
    _renewals(paid=10, failed=9, at=NOW - timedelta(hours=1))  # too few renewals to tell
    assert check(NOW, alerting, probe=None).firing == []
