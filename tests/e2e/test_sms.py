"""Texts end to end: localstripe opens the case, a real Celery worker sends its text to a
Twilio on loopback (``tests/support/twilio.py``), and the web app takes STOP / START
replies signed as Twilio signs them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text as sql

from dunning import queue
from dunning.app import create_app
from dunning.db import session_scope
from dunning.events.reconcile import reconcile
from dunning.notify.sms.routes import SMS_WEBHOOK_PATH
from dunning.notify.sms.signature import sign
from dunning.policy.activation import DEFAULT_POLICY_FILE, activate
from dunning.policy.store import apply_policy
from dunning.processors.stripe_adapter import StripeAdapter
from dunning.scheduler import sweeper
from tests.support import sandbox
from tests.support.ledger import all_handled, rows, scalar, wait_until
from tests.support.servers import WebServer
from tests.support.twilio import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, FakeTwilio, fake_twilio

PHONE = "+12125550147"


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    with fake_twilio() as fake:
        yield fake


def _texting_policy() -> None:
    """The default policy, with its first step on both channels, made active."""
    text = DEFAULT_POLICY_FILE.read_text()
    text = text.replace('name = "default"', 'name = "texting"').replace(
        "version = 2", "version = 1"
    )
    text = text.replace(
        'template = "payment_failed"\n',
        'template = "payment_failed"\nchannels = ["email", "sms"]\n',
    )
    with session_scope() as session:
        apply_policy(session, text, "tests")
        activate(session, "texting", 1, "tests")


def _open_case(base: str) -> dict[str, Any]:
    """A failed first charge with the customer's phone at Stripe and in the ledger."""
    sdk = sandbox.client(base)
    customer_id, _ = sandbox.subscribe(sdk, sandbox.FAILING_CARD)
    sdk.v1.customers.update(customer_id, params={"phone": PHONE})
    reconcile(StripeAdapter(sandbox.API_KEY, base))
    wait_until(all_handled, what="reconciled events applied")
    with session_scope() as session:  # the customer's phone, as the ledger keeps it
        session.execute(
            sql("UPDATE customers SET phone = :p WHERE id = :c"), {"p": PHONE, "c": customer_id}
        )
    [case] = rows("SELECT id FROM dunning_cases WHERE customer_id = :c", c=customer_id)
    return case


def _sms_action(case_id: object) -> dict[str, Any]:
    [action] = rows(
        "SELECT id, status, due_at, result FROM scheduled_actions WHERE dedupe_key = :k",
        k=f"case:{case_id}:sms:0",
    )
    return action


def _settled() -> bool:
    return (
        scalar("SELECT count(*) FROM scheduled_actions WHERE status IN ('claimed', 'running')") == 0
    )


def test_a_failed_renewal_is_texted_once_by_the_worker(
    processor: str, clean_db: None, celery_worker: object, twilio: FakeTwilio
) -> None:
    _texting_policy()
    case = _open_case(processor)
    action = _sms_action(case["id"])
    now = action["due_at"]
    with session_scope() as session:
        dispatch = dict(sweeper.claim(session, now, 100))[action["id"]]
    # Celery delivers the task three times (a redelivery, a duplicate message).
    queue.send_run_actions([(action["id"], dispatch)] * 3, now)
    wait_until(_settled, what="the text's dispatches handled")
    wait_until(lambda: _sms_action(case["id"])["status"] == "done", what="text sent")
    assert len(twilio.requests) == 1
    [message] = twilio.messages
    assert message["To"] == PHONE and message["From"] == FROM_NUMBER
    assert "/pay/" in message["Body"] and "$49.00" in message["Body"]
    [text] = rows("SELECT status, provider_id FROM notifications WHERE channel = 'sms'")
    assert text == {"status": "sent", "provider_id": message["sid"]}


def _reply(server: WebServer, body: str, token: str = AUTH_TOKEN) -> httpx.Response:
    url = server.url + SMS_WEBHOOK_PATH
    form = {
        "MessageSid": "SM" + "1" * 32,
        "AccountSid": ACCOUNT_SID,
        "From": PHONE,
        "To": FROM_NUMBER,
        "Body": body,
        "NumMedia": "0",
    }
    signature = sign(token, url, form.items())
    return httpx.post(url, data=form, headers={"X-Twilio-Signature": signature})


def _opted_out() -> bool | None:
    return scalar("SELECT opted_out FROM sms_opt_outs WHERE phone = :p", p=PHONE)


def test_stop_opts_out_start_opts_in_and_a_forged_reply_changes_nothing(
    processor: str, clean_db: None, celery_worker: object, twilio: FakeTwilio
) -> None:
    with WebServer(create_app()) as server:
        forged = _reply(server, "STOP", token="not-the-auth-token")
        assert forged.status_code == 403 and _opted_out() is None
        unsigned = httpx.post(server.url + SMS_WEBHOOK_PATH, data={"From": PHONE, "Body": "STOP"})
        assert unsigned.status_code == 403 and _opted_out() is None

        stop = _reply(server, "Stop")
        assert stop.status_code == 200 and stop.headers["content-type"].startswith("text/xml")
        assert "<Response>" in stop.text and _opted_out() is True
        assert _reply(server, "START", token="forged").status_code == 403
        assert _opted_out() is True  # the forged START did not opt back in
        assert _reply(server, "hello?").status_code == 200 and _opted_out() is True

        # The customer who replied STOP opens a case: the text is skipped, not sent.
        _texting_policy()
        case = _open_case(processor)
        action = _sms_action(case["id"])
        sweeper.sweep(action["due_at"])
        wait_until(lambda: _sms_action(case["id"])["status"] == "done", what="text skipped")
        assert "opted out" in str(_sms_action(case["id"])["result"])
        assert twilio.requests == []

        assert _reply(server, "unstop").status_code == 200 and _opted_out() is False
