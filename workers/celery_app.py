"""The Celery app the worker and beat processes load (built in ``dunning.queue``).

Tasks are short, acknowledged late, and safe to run twice; dates far away live in
Postgres, never in a Celery ETA (docs/architecture.md).
"""

from __future__ import annotations

from dunning.queue import broker_url, celery_app

__all__ = ["app", "broker_url"]

app = celery_app()
