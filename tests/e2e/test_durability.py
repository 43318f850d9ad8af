"""Nothing accepted is lost: broker outages, failed handling, replay."""

from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import text

from dunning.db import get_engine
from dunning.events import service
from tests.support.env import WEBHOOK_SECRET
from tests.support.ledger import all_handled, rows, scalar, wait_until
from tests.support.servers import ThrowawayRedis, WebServer
from tests.support.stripe_events import event, fixture, post


def test_events_accepted_while_redis_is_down_are_handled_after_it_returns(
    web: WebServer, redis_server: ThrowawayRedis
) -> None:
    from celery.contrib.testing.worker import start_worker

    from workers.celery_app import app

    redis_server.stop()
    try:
        for n in range(20):
            invoice = fixture("invoice", id=f"in_down_{n}", status="open", attempt_count=1)
            answer = post(
                web.url,
                event("invoice.payment_failed", invoice, event_id=f"evt_d{n}"),
                secret=WEBHOOK_SECRET,
            )
            assert answer.status_code == 200, answer.text
    finally:
        redis_server.start()
    assert scalar("SELECT count(*) FROM processor_events WHERE handled_at IS NULL") == 20
    with start_worker(app, pool="solo", perform_ping_check=False):
        # What beat's sweep task does, with no grace period instead of a minute.
        assert service.sweep_unhandled(timedelta(0)) == 20
        wait_until(all_handled, timeout=60, what="events handled after the outage")
    assert scalar("SELECT count(*) FROM dunning_cases WHERE state = 'open'") == 20


def test_a_failed_handling_keeps_its_traceback_and_replay_applies_it(
    web: WebServer, celery_worker: object
) -> None:
    broken = event("invoice.paid", {"object": "invoice"}, event_id="evt_broken")  # no id
    assert post(web.url, broken, secret=WEBHOOK_SECRET).status_code == 200
    wait_until(
        lambda: scalar("SELECT status FROM processor_events") == "failed", what="handling to fail"
    )
    [stored] = rows("SELECT error, traceback, attempts, handled_at FROM processor_events")
    assert stored["error"].startswith("KeyError")
    assert "Traceback" in stored["traceback"] and stored["handled_at"] is None

    fixed = json.dumps(
        event("invoice.paid", fixture("invoice", status="paid"), event_id="evt_broken")
    )
    with get_engine().begin() as conn:  # as if the bug were fixed: the same event now applies
        conn.execute(text("UPDATE processor_events SET body = :b"), {"b": fixed})
    ids = service.reset_for_replay(failed_only=True, since=None)
    assert service.handle_events(ids) == {"handled": 1}
    assert rows("SELECT status, error FROM processor_events") == [
        {"status": "handled", "error": None}
    ]
