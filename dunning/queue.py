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


def send_run_actions(claimed: Sequence[tuple[int, int]], now: datetime) -> None:
    """Ask the workers to perform claimed actions, one task each, over one connection.

    Each task carries its dispatch number, which guards against reruns."""
    from workers.celery_app import app

    with app.producer_or_acquire() as producer:
        for action_id, dispatch in claimed:
            app.send_task(
                RUN_ACTION,
                args=[action_id, dispatch, now.isoformat()],
                producer=producer,
                retry=False,
            )
