"""The Celery app, and sending tasks to the workers by name.

The service package owns the app (its broker settings come from ``dunning.settings``)
and sends tasks by name, so it never imports the task modules in ``workers/``, which
sit above it. No task is ever scheduled days ahead with an ETA: dates far away live
in Postgres and periodic sweepers send the due work (docs/architecture.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache

from celery import Celery
from kombu import Queue

from dunning.settings import get_settings

log = logging.getLogger(__name__)

APPLY_EVENTS = "workers.tasks.apply_events"
RUN_ACTIONS = "workers.tasks.run_actions"
# Applying events has a queue of its own: a renewal-day burst's backlog of events does
# not hold up due emails and retries, which wait in the default queue (every worker
# consumes both, taking from each in turn).
DEFAULT_QUEUE = "celery"
EVENTS_QUEUE = "events"
# Claimed actions per task message: few messages for the broker, and still enough of
# them that every worker process gets a share of a large sweep.
DISPATCH_CHUNK = 20
# Claimed actions waiting in the broker at most (a minute or so of emails for two
# worker processes): on a renewal day the rest stay pending in Postgres, so no lease
# runs out while its message waits and nothing is dispatched twice for nothing.
MAX_WAITING_ACTIONS = 2000


def broker_url(redis_url: str) -> str:
    """Kombu spells a Unix-socket Redis ``redis+socket://``."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url[len("unix://") :]
    return redis_url


@lru_cache(maxsize=1)
def celery_app() -> Celery:
    """The one Celery app of the process, built on first use from the settings."""
    settings = get_settings()
    if not settings.redis_url:
        raise RuntimeError("DUNNING_REDIS_URL is not set (embedded services not started)")
    celery = Celery("dunning", broker=broker_url(settings.redis_url), include=["workers.tasks"])
    celery.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600},
        worker_hijack_root_logger=False,
        task_queues=(Queue(DEFAULT_QUEUE), Queue(EVENTS_QUEUE)),
        task_default_queue=DEFAULT_QUEUE,
        task_routes={APPLY_EVENTS: {"queue": EVENTS_QUEUE}},
        beat_schedule={
            "sweep-events": {
                "task": "workers.tasks.sweep_events",
                "schedule": max(settings.sweep_interval_seconds, 1.0),
            },
            "sweep-actions": {
                "task": "workers.tasks.sweep_actions",
                "schedule": settings.sweep_interval_seconds,
            },
            "reconcile": {
                "task": "workers.tasks.reconcile",
                "schedule": float(settings.reconcile_interval_seconds),
            },
            "scan-reminders": {
                "task": "workers.tasks.scan_reminders",
                "schedule": float(settings.email_scan_interval_seconds),
            },
            "check-alerts": {
                "task": "workers.tasks.check_alerts",
                "schedule": float(settings.alert_check_interval_seconds),
            },
        },
    )
    return celery


def send_apply_events(event_ids: Sequence[int]) -> None:
    """Ask a worker to apply stored events; failures are left to the sweeper."""
    if not event_ids:
        return
    ids = list(event_ids)
    # argsrepr: Celery would otherwise build a safe repr of up to 500 ids for its logs,
    # a third of the cost of sending from the web process.
    celery_app().send_task(APPLY_EVENTS, args=[ids], argsrepr=f"[{len(ids)} ids]", retry=False)


def send_run_actions(claimed: Sequence[tuple[int, int]], now: datetime) -> None:
    """Ask the workers to perform claimed actions, a chunk per task message, over one
    connection. Each action carries its dispatch number, which guards against reruns."""
    app = celery_app()
    with app.producer_or_acquire() as producer:
        for start in range(0, len(claimed), DISPATCH_CHUNK):
            chunk = [list(pair) for pair in claimed[start : start + DISPATCH_CHUNK]]
            app.send_task(
                RUN_ACTIONS, args=[chunk, now.isoformat()], producer=producer, retry=False
            )


def waiting_actions() -> int:
    """About how many claimed actions wait in the broker (a chunk per message)."""
    with celery_app().connection_for_read() as connection:
        declared = connection.default_channel.queue_declare(DEFAULT_QUEUE)
    return int(declared.message_count) * DISPATCH_CHUNK


def parse_clock(value: str) -> datetime:
    """The sweeper's clock as sent in a task (naive means UTC)."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
