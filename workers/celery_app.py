"""The Celery app. Tasks are short, acknowledged late, and safe to run twice.

No task is ever scheduled days ahead with an ETA: dates far away live in Postgres
and periodic sweepers send the due work (ARCHITECTURE rule 3).
"""

from __future__ import annotations

from celery import Celery

from dunning.settings import get_settings


def broker_url(redis_url: str) -> str:
    """Kombu spells a Unix-socket Redis ``redis+socket://``."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url[len("unix://") :]
    return redis_url


def make_app() -> Celery:
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
        },
    )
    return celery


app = make_app()
