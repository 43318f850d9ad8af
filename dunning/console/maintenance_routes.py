"""The CLI's maintenance commands as buttons on the alerts page (ops): replay the failed
events, reconcile with the processor now, plan the due reminders now.

Each hands the work to the workers (the same tasks beat sends) and is audited; the page
says what was sent, and the alerts page shows what changes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from starlette.responses import RedirectResponse, Response

from dunning import queue
from dunning.admin.audit import record_audit
from dunning.console.access import ConsoleRoute, Viewer, operator
from dunning.db import session_scope
from dunning.events import service as events

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

RECONCILE = "workers.tasks.reconcile"
SCAN_REMINDERS = "workers.tasks.scan_reminders"


def _replay() -> dict[str, int]:
    """``dunning events replay --failed``, applied by the workers."""
    ids = events.reset_for_replay(failed_only=True, since=None)
    for start in range(0, len(ids), 100):
        queue.send_apply_events(ids[start : start + 100])
    return {"events": len(ids)}


def _send(task: str) -> Callable[[], dict[str, int]]:
    def send() -> dict[str, int]:
        queue.celery_app().send_task(task, retry=False)
        return {}

    return send


JOBS: dict[str, tuple[str, Callable[[], dict[str, int]]]] = {
    "replay-failed-events": ("events.replay_failed", _replay),
    "reconcile": ("processor.reconcile", _send(RECONCILE)),
    "scan-reminders": ("email.scan", _send(SCAN_REMINDERS)),
}


@router.post("/console/maintenance/{job}")
def run(
    job: Annotated[str, Path(pattern="^(replay-failed-events|reconcile|scan-reminders)$")],
    viewer: Annotated[Viewer, Depends(operator)],
) -> Response:
    """Start one maintenance job and say so on the alerts page."""
    action, start = JOBS[job]
    details = start()
    with session_scope() as session:
        record_audit(session, viewer.actor, action, "service", None, details)
    count = details.get("events")
    suffix = f"&n={count}" if count is not None else ""
    return RedirectResponse(f"/console/alerts?did={job}{suffix}", 303)
