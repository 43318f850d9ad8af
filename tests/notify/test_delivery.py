"""Delivery of one email action against Postgres and a real SMTP server: the outcomes
that are not the happy path (worker died mid-send, outside hours, no address, no
configuration), and the HTTP provider sender against a local HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import text

from dunning import actions
from dunning.db import session_scope
from dunning.ledger.models import Customer, Subscription
from dunning.notify import delivery
from dunning.notify.senders import (
    HttpSender,
    OutgoingEmail,
    PermanentSendError,
    TransientSendError,
)
from dunning.notify.sequence import RENEWAL, schedule_email
from dunning.scheduler import runner, sweeper
from dunning.scheduler.models import ActionKind
from tests.support.ledger import rows
from tests.support.smtp import Catcher, environment

pytestmark = pytest.mark.usefixtures("services")  # reads and writes the ledger

NOON_UTC = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # 13:00 in Paris, 21:00 in Tokyo
KEY = "renewal:sub_d:2026-03-05:3"


def _reminder(time_zone: str = "Europe/Paris", email: str | None = "d@example.com") -> int:
    with session_scope() as session:
        session.add(Customer(id="cus_d", email=email, name="Dee", time_zone=time_zone))
        session.add(
            Subscription(
                id="sub_d", customer_id="cus_d", status="active", plan_name="Pro", interval="year",
                amount=49000, currency="eur", current_period_end=NOON_UTC + timedelta(days=3),
            )
        )  # fmt: skip
        payload = {
            "kind": RENEWAL,
            "template": "renewal_reminder",
            "subscription_id": "sub_d",
            "customer_id": "cus_d",
            "renewal_date": "2026-03-05",
            "days": 3,
        }
        schedule_email(session, KEY, NOON_UTC, payload)
    with session_scope() as session:
        [(action_id, _)] = sweeper.claim(session, NOON_UTC, 10)
    return action_id


def _action() -> dict[str, Any]:
    [action] = rows(
        "SELECT status, due_at, attempts, started_attempt, result FROM scheduled_actions"
        " WHERE dedupe_key = :k",
        k=KEY,
    )
    return action


def _notification() -> dict[str, Any]:
    [row] = rows(
        "SELECT status, error, attempts, details FROM notifications WHERE dedupe_key = :k", k=KEY
    )
    return row


class _WorkerDied(Exception):
    """Stands for the worker process dying (not an error the runner handles)."""


class _DiesAfterSending(delivery.SendEmail):
    def perform(self, work: delivery.EmailWork) -> str | delivery.Refused:
        super().perform(work)
        raise _WorkerDied


def test_a_send_whose_outcome_is_unknown_is_resent_once_with_the_same_message_id(
    clean_db: None, smtp: Catcher
) -> None:
    action_id = _reminder()
    # A worker claims the row, marks the action running, sends... and dies before it
    # records the send: the outcome is unknown to us.
    dies = _DiesAfterSending(_settings())
    with pytest.raises(_WorkerDied):
        runner.run({ActionKind.SEND_EMAIL: dies}, action_id, 1, NOON_UTC)
    assert _action()["status"] == "running" and _notification()["status"] == "claimed"

    later = NOON_UTC + sweeper.LEASE + timedelta(seconds=1)
    with session_scope() as session:
        [(again, dispatch)] = sweeper.claim(session, later, 10)
    assert (again, dispatch) == (action_id, 2)
    assert actions.run_action(None, action_id, dispatch, later) == "sent"
    first, second = smtp.wait_for(2)
    assert first["Message-ID"] == second["Message-ID"]  # one message to mail systems
    notification = _notification()
    assert notification["status"] == "sent"
    assert notification["details"]["unknown_outcome_resends"] == 1
    # Sent is final: yet another dispatch mails nothing.
    assert actions.run_action(None, action_id, dispatch, later) == "skipped: not leased"
    assert len(smtp.messages) == 2


def test_outside_allowed_hours_the_email_waits_for_the_morning(
    clean_db: None, smtp: Catcher
) -> None:
    action_id = _reminder(time_zone="Asia/Tokyo")
    outcome = actions.run_action(None, action_id, 1, NOON_UTC)
    assert outcome == "rescheduled: outside allowed hours"
    action = _action()
    assert action["status"] == "pending"
    assert action["due_at"] == datetime(2026, 3, 2, 23, 0, tzinfo=UTC)  # 08:00 in Tokyo
    assert smtp.messages == [] and rows("SELECT id FROM notifications") == []


def test_a_customer_without_an_address_is_recorded_as_failed(clean_db: None, smtp: Catcher) -> None:
    action_id = _reminder(email=None)
    assert actions.run_action(None, action_id, 1, NOON_UTC).startswith("failed:")
    notification = _notification()
    assert notification["status"] == "failed" and "no email address" in notification["error"]
    assert _action()["status"] == "failed"


def test_missing_mail_settings_fail_the_email_with_a_clear_error(
    clean_db: None, smtp: Catcher
) -> None:
    action_id = _reminder()
    with environment(DUNNING_SMTP_HOST=""):
        assert actions.run_action(None, action_id, 1, NOON_UTC).startswith("failed:")
    assert "DUNNING_SMTP_HOST" in _notification()["error"]
    assert smtp.messages == []


def _settings() -> Any:
    from dunning.settings import get_settings

    return get_settings()


class _Provider(BaseHTTPRequestHandler):
    """A stand-in email provider: answers by the recipient's local part."""

    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.received.append({"headers": dict(self.headers), "body": body})
        status = {"busy": 429, "down": 503, "bad": 422}.get(body["to"][0].split("@")[0], 200)
        payload = json.dumps({"id": "msg_123"} if status == 200 else {"error": "no"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def provider() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Provider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def _outgoing(to: str) -> OutgoingEmail:
    return OutgoingEmail(
        to=to, sender="billing@acme.example", subject="Hi", text="text", html="<p>html</p>",
        message_id="<dunning.1.abc@acme.example>",
    )  # fmt: skip


def test_http_provider_sender(provider: str) -> None:
    sender = HttpSender(provider, "tok_secret")
    assert sender.send(_outgoing("ok@example.com")) == "msg_123"
    request = _Provider.received[-1]
    assert request["headers"]["Authorization"] == "Bearer tok_secret"
    assert request["headers"]["Idempotency-Key"] == "dunning.1.abc@acme.example"
    assert request["body"]["text"] == "text" and request["body"]["html"] == "<p>html</p>"
    for to in ("busy@example.com", "down@example.com"):
        with pytest.raises(TransientSendError):
            sender.send(_outgoing(to))
    with pytest.raises(PermanentSendError):
        sender.send(_outgoing("bad@example.com"))
    with pytest.raises(TransientSendError):  # nothing listens there
        HttpSender("http://127.0.0.1:9", "t", timeout=1).send(_outgoing("ok@example.com"))


def _reminders(n: int) -> list[tuple[int, int]]:
    """``n`` renewal reminders for ``n`` customers, claimed: (action id, dispatch)."""
    with session_scope() as session:
        for i in range(n):
            session.add(Customer(id=f"cus_{i}", email=f"c{i}@example.com", time_zone="UTC"))
            session.add(
                Subscription(
                    id=f"sub_{i}", customer_id=f"cus_{i}", status="active", plan_name="Pro",
                    interval="year", amount=49000, currency="eur",
                    current_period_end=NOON_UTC + timedelta(days=3),
                )
            )  # fmt: skip
            payload = {
                "kind": RENEWAL,
                "template": "renewal_reminder",
                "subscription_id": f"sub_{i}",
                "customer_id": f"cus_{i}",
                "renewal_date": "2026-03-05",
                "days": 3,
            }
            schedule_email(session, f"renewal:sub_{i}:2026-03-05:3", NOON_UTC, payload)
    with session_scope() as session:
        return sorted(sweeper.claim(session, NOON_UTC, 10))


class _FailsFor(delivery.SendEmail):
    """Raises an unexpected error for one subscription's email, in ``prepare`` or ``perform``."""

    def __init__(self, subscription_id: str, step: str) -> None:
        super().__init__(_settings())
        self.subscription_id, self.step = subscription_id, step

    def prepare(self, session: Any, action: Any, now: datetime) -> Any:
        if self.step == "prepare" and action.payload["subscription_id"] == self.subscription_id:
            session.execute(text("SELECT 1/0"))  # the batch's transaction is aborted
        return super().prepare(session, action, now)

    def perform(self, work: delivery.EmailWork) -> str | delivery.Refused:
        if self.step == "perform" and work.message.to == "c1@example.com":
            raise RuntimeError("boom")
        return super().perform(work)


@pytest.mark.parametrize("step", ["prepare", "perform"])
def test_one_failing_action_in_a_batch_holds_back_none_of_the_others(
    clean_db: None, smtp: Catcher, step: str
) -> None:
    claimed = _reminders(3)
    results = runner.run_batch({ActionKind.SEND_EMAIL: _FailsFor("sub_1", step)}, claimed, NOON_UTC)
    assert results[0] == results[2] == "sent"
    assert results[1].startswith("error")
    assert sorted(m["To"] for m in smtp.wait_for(2)) == ["c0@example.com", "c2@example.com"]
    states = rows(
        "SELECT s.status, n.status AS sent FROM scheduled_actions s"
        " LEFT JOIN notifications n ON n.dedupe_key = s.dedupe_key ORDER BY s.id"
    )
    # The failing one is still leased: its lease runs out and the sweeper tries again.
    leased = {"prepare": ("claimed", None), "perform": ("running", "claimed")}[step]
    got = [(r["status"], r["sent"]) for r in states]
    assert got == [("done", "sent"), leased, ("done", "sent")]


def test_a_dispatch_repeated_within_a_batch_sends_once(clean_db: None, smtp: Catcher) -> None:
    [(action_id, dispatch)] = _reminders(1)
    results = actions.run_actions(None, [(action_id, dispatch)] * 2, NOON_UTC)
    assert results == ["sent", "skipped: stale or duplicate dispatch"]
    assert len(smtp.wait_for(1)) == 1


def test_a_message_with_accents_and_a_long_subject_arrives_as_written(smtp: Catcher) -> None:
    from dunning.notify.senders import sender_from_settings

    subject = "Tu pago falló: actualiza tu tarjeta para seguir con tu suscripción anual a Café Pro"
    email = OutgoingEmail(
        to="pat@example.com", sender='"Café Ñandú" <billing@example.com>', subject=subject,
        text="Hola, José: 12,00 €\n" + "línea " * 40, html="<p>Hola, José: 12,00 €</p>",
        message_id="<dunning.9.abc@example.com>", reply_to="help@example.com",
        tags=(("notification", "9"),),
    )  # fmt: skip
    assert sender_from_settings(_settings()).send(email) == email.message_id
    [message] = smtp.wait_for(1)
    assert message["Subject"] == subject
    assert message["From"].addresses[0].display_name == "Café Ñandú"
    assert message["Message-ID"] == email.message_id and message["X-Dunning-Notification"] == "9"
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.get_body(("plain",)), message.get_body(("html",))
    # Lines end in CRLF on the wire, and a quoted-printable part decodes with them.
    assert plain is not None and plain.get_content().replace("\r\n", "\n") == email.text
    assert html is not None and html.get_content().rstrip("\r\n") == email.html


def test_a_batch_sends_on_one_connection_and_a_bounce_costs_only_its_own_email(
    clean_db: None, smtp: Catcher
) -> None:
    smtp.bounce.add("c1@example.com")
    claimed = _reminders(4)
    results = actions.run_actions(None, claimed, NOON_UTC)
    assert results[1].startswith("failed: recipient refused: 550")
    assert [results[0], results[2], results[3]] == ["sent"] * 3
    assert len(smtp.wait_for(3)) == 3
    # One connection for the batch; the refused recipient's is dropped and a new one
    # carries the rest.
    assert smtp.greetings == 2
