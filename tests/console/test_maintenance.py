"""The maintenance buttons of the alerts page: ops only, with the CSRF token, audited,
and the work done by the workers (a failed event replayed is applied)."""

from __future__ import annotations

import time

import httpx
from sqlalchemy import update

from dunning.db import session_scope
from dunning.events.models import ProcessorEvent
from tests.console.helpers import csrf_of, login
from tests.support.admin import make_key
from tests.support.cases import store
from tests.support.ledger import all_handled, rows, wait_until
from tests.support.servers import WebServer
from tests.support.stripe_events import event, fixture


def test_replaying_failed_events_from_the_console(web: WebServer, celery_worker: object) -> None:
    customer = fixture("customer", id="cus_replayed", email="replayed@example.com")
    [pk] = store(event("customer.created", customer, created=int(time.time())))
    wait_until(all_handled, what="the worker applied it")  # then it fails, as below
    with session_scope() as session:  # as a failed handling leaves it
        session.execute(
            update(ProcessorEvent)
            .where(ProcessorEvent.id == pk)
            .values(status="failed", attempts=3, error="OperationalError: server closed")
        )
    with httpx.Client(base_url=web.url, timeout=30) as finance:
        login(finance, make_key("finance", "finance-maintenance"))
        page = finance.get("/console/alerts")
        assert 'data-testid="maintenance"' not in page.text
        refused = finance.post(
            "/console/maintenance/replay-failed-events", data={"csrf": csrf_of(page.text)}
        )
        assert refused.status_code == 403
    with httpx.Client(base_url=web.url, timeout=30) as ops:
        login(ops, make_key("ops", "ops-maintenance"))
        page = ops.get("/console/alerts")
        assert 'data-testid="maintenance"' in page.text
        assert ops.post("/console/maintenance/reconcile").status_code == 403  # no token
        done = ops.post(
            "/console/maintenance/replay-failed-events", data={"csrf": csrf_of(page.text)}
        )
        assert done.status_code == 303
        assert "1 failed events sent" in ops.get(done.headers["location"]).text
        for job in ("reconcile", "scan-reminders"):
            sent = ops.post(f"/console/maintenance/{job}", data={"csrf": csrf_of(page.text)})
            assert sent.status_code == 303
    wait_until(
        lambda: (
            rows("SELECT status FROM processor_events WHERE id = :i", i=pk)
            == [{"status": "handled"}]
        ),
        what="the replayed event applied by the worker",
    )
    assert rows("SELECT email FROM customers") == [{"email": "replayed@example.com"}]
    assert rows("SELECT actor, action, details FROM audit_log ORDER BY id")[-3:] == [
        {"actor": "ops-maintenance", "action": "events.replay_failed", "details": {"events": 1}},
        {"actor": "ops-maintenance", "action": "processor.reconcile", "details": {}},
        {"actor": "ops-maintenance", "action": "email.scan", "details": {}},
    ]
