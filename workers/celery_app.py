"""The Celery app the worker and beat processes load (built in ``dunning.queue``).

Tasks are short, acknowledged late, and safe to run twice; dates far away live in
Postgres, never in a Celery ETA (docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init

from dunning.queue import broker_url, celery_app
from dunning.startup import settle_heap

__all__ = ["app", "broker_url"]

app = celery_app()


@worker_process_init.connect
def _settle(**_: Any) -> None:
    settle_heap()
