"""Sending tasks to the workers by name, so the service package never imports the tasks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

log = logging.getLogger(__name__)

APPLY_EVENTS = "workers.tasks.apply_events"


def send_apply_events(event_ids: Sequence[int]) -> None:
    """Ask a worker to apply stored events; failures are left to the sweeper."""
    if not event_ids:
        return
    from workers.celery_app import app

    app.send_task(APPLY_EVENTS, args=[list(event_ids)], retry=False)

RUN_ACTION = "workers.tasks.run_action"


def send_run_action(action_id: int, dispatch: int, now: datetime) -> None:
    """Ask a worker to perform one claimed action (its dispatch number guards reruns)."""
    from workers.celery_app import app

    app.send_task(RUN_ACTION, args=[action_id, dispatch, now.isoformat()], retry=False)
