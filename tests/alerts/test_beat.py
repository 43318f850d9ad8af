"""Beat runs the alert check every few minutes: the schedule has it, and a real Celery
worker runs the task, which tells the webhook."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from dunning.db import session_scope
from dunning.events.models import ProcessorEvent
from dunning.queue import celery_app
from dunning.settings import get_settings
from tests.alerts.receiver import Receiver
from tests.support.ledger import rows, wait_until
from tests.support.smtp import environment
from workers.tasks import check_alerts


@pytest.fixture
def quiet_queue(services: None) -> None:
    """No task left in the broker by an earlier test (their row ids are reused here)."""
    celery_app().control.purge()


def test_beat_schedules_the_check_and_a_worker_runs_it(
    receiver: Receiver, quiet_queue: None, celery_worker: object
) -> None:
    entry = celery_app().conf.beat_schedule["check-alerts"]
    assert entry["task"] == "workers.tasks.check_alerts"
    assert entry["schedule"] == float(get_settings().alert_check_interval_seconds) == 300.0
    with session_scope() as session:
        session.execute(
            insert(ProcessorEvent).values(
                processor="stripe",
                event_id="evt_stuck",
                type="charge.failed",
                body="{}",
                headers={},
                received_at=datetime.now(UTC) - timedelta(hours=1),
                status="failed",
            )
        )
    with environment(DUNNING_ALERT_WEBHOOK_URL=receiver.url):
        check_alerts.delay()
        wait_until(lambda: receiver.conditions() == [("failed_events", 1)], what="the alert")
        for _ in range(2):  # beat's next runs: the condition holds, nothing more is sent
            before = _checked_at()
            check_alerts.delay()
            wait_until(lambda: _checked_at() > before, what="the next check")  # noqa: B023
    assert receiver.conditions() == [("failed_events", 1)]


def _checked_at() -> datetime:
    return rows("SELECT checked_at FROM alert_states WHERE condition = 'failed_events'")[0][
        "checked_at"
    ]
