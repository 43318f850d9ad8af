"""Sending tasks to the workers by name, so the service package never imports the tasks."""

from __future__ import annotations

import logging
from collections.abc import Sequence

log = logging.getLogger(__name__)

APPLY_EVENTS = "workers.tasks.apply_events"


def send_apply_events(event_ids: Sequence[int]) -> None:
    """Ask a worker to apply stored events; failures are left to the sweeper."""
    if not event_ids:
        return
    from workers.celery_app import app

    app.send_task(APPLY_EVENTS, args=[list(event_ids)], retry=False)
