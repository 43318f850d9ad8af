"""The webhook endpoint against the real web app, Postgres, Redis and a Celery worker."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from dunning.app import create_app
from dunning.settings import Settings
from tests.support.env import OLD_WEBHOOK_SECRET, WEBHOOK_SECRET
from tests.support.ledger import all_handled, rows, scalar, wait_until
from tests.support.servers import WebServer, free_port
from tests.support.stripe_events import event, fixture, post


def _count() -> int:
    return int(scalar("SELECT count(*) FROM processor_events"))


def test_a_signed_event_posted_three_times_is_stored_once(web: WebServer) -> None:
    payload = event("customer.created", fixture("customer"), event_id="evt_once")
    answers = [post(web.url, payload, secret=WEBHOOK_SECRET) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert [r.json()["duplicate"] for r in answers] == [False, True, True]
    stored = rows("SELECT event_id, type, body, headers, source FROM processor_events")
    assert len(stored) == 1
    assert stored[0]["event_id"] == "evt_once"
    assert json.loads(stored[0]["body"]) == payload  # the raw body, verbatim
    assert "stripe-signature" in stored[0]["headers"]


def test_the_previous_secret_is_accepted_during_rotation(web: WebServer) -> None:
    payload = event("customer.created", fixture("customer"), event_id="evt_rotated")
    assert post(web.url, payload, secret=OLD_WEBHOOK_SECRET).status_code == 200
    assert _count() == 1


def test_bad_requests_are_refused_and_nothing_is_stored(web: WebServer) -> None:
    payload = event("customer.created", fixture("customer"), event_id="evt_bad")
    body = json.dumps(payload).encode()
    http = httpx.Client(timeout=10)
    missing = http.post(f"{web.url}/webhooks/stripe", content=body)
    wrong = post(web.url, payload, secret="whsec_attacker")
    stale = post(web.url, payload, secret=WEBHOOK_SECRET, timestamp=int(time.time()) - 301)
    malformed = post(web.url, b'{"id": "evt_x", "type": ', secret=WEBHOOK_SECRET)
    not_event = post(web.url, b'{"hello": "world"}', secret=WEBHOOK_SECRET)
    huge = post(web.url, b'{"pad": "' + b"x" * (1024 * 1024) + b'"}', secret=WEBHOOK_SECRET)
    assert missing.status_code == 400
    assert wrong.status_code == 400
    assert stale.status_code == 400
    assert malformed.status_code == 400
    assert not_event.status_code == 400
    assert huge.status_code == 413
    assert _count() == 0


def test_unknown_event_types_are_stored_and_marked_ignored(
    web: WebServer, celery_worker: object
) -> None:
    payload = event("plan.created", fixture("plan"), event_id="evt_plan")
    assert post(web.url, payload, secret=WEBHOOK_SECRET).status_code == 200
    wait_until(all_handled, what="event handled")
    assert rows("SELECT status FROM processor_events") == [{"status": "ignored"}]


def test_database_unreachable_answers_503_so_stripe_retries(clean_db: None) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    settings = Settings(
        database_url=dead,
        redis_url="redis://127.0.0.1:1/0",
        stripe_webhook_secrets=[WEBHOOK_SECRET],
    )
    with WebServer(create_app(settings)) as server:
        payload = event("customer.created", fixture("customer"), event_id="evt_503")
        assert post(server.url, payload, secret=WEBHOOK_SECRET).status_code == 503


def test_healthz_reports_database_and_broker(web: WebServer) -> None:
    answer = httpx.get(f"{web.url}/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok", "database": "ok", "broker": "ok", "intake": "ok"}


@pytest.mark.parametrize("event_type", ["invoice.payment_failed"])
def test_a_failure_event_is_applied_by_the_worker(
    web: WebServer, celery_worker: object, event_type: str
) -> None:
    invoice = fixture("invoice", status="open", attempt_count=1)
    assert post(web.url, event(event_type, invoice), secret=WEBHOOK_SECRET).status_code == 200
    wait_until(all_handled, what="event handled")
    assert rows("SELECT state, amount FROM dunning_cases") == [{"state": "open", "amount": 1000}]
