"""``/console/alerts``: each alert condition, firing or clear, and where alerts go.

The alert emails and webhook messages link here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from dunning.alerts import checks, delivery
from dunning.alerts import service as alerts
from dunning.console.access import ConsoleRoute, Viewer, reader, settings_of
from dunning.console.pages import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

DESCRIPTIONS = {
    checks.FAILURE_RATE: "The renewal failure rate of the last hours is far above its "
    "trailing 4 weeks.",
    checks.WEBHOOK_BACKLOG: "Webhook events stored but not handled for minutes: are the "
    "workers running?",
    checks.FAILED_EVENTS: "Webhook events whose handling failed; once the cause is fixed, "
    "dunning events replay --failed applies them again.",
    checks.FAILED_ACTIONS: "Retries, emails or end actions that gave up recently.",
    checks.PROCESSOR_UNREACHABLE: "The processor's API does not answer or refuses the key.",
}


DONE = {
    "replay-failed-events": "{n} failed events sent to the workers to be applied again.",
    "reconcile": "The workers are asking the processor for what the webhooks missed.",
    "scan-reminders": "The workers are planning the renewal and card-expiring reminders due.",
}


@router.get("/console/alerts")
def alert_states(
    request: Request,
    viewer: Annotated[Viewer, Depends(reader)],
    did: str | None = None,
    n: int = 0,
) -> Response:
    """Every condition's state, firing first, and the maintenance buttons."""
    settings = settings_of(request)
    rows = {row.condition: row for row in alerts.states()}
    done = DONE.get(did or "")
    return page(
        "alerts.html",
        viewer=viewer,
        section="alerts",
        conditions=checks.CONDITIONS,
        rows=rows,
        descriptions=DESCRIPTIONS,
        emails=settings.alert_emails if delivery.email_channel(settings) else [],
        emails_set=bool(settings.alert_emails),
        webhook=bool(settings.alert_webhook_url),
        interval=settings.alert_check_interval_seconds,
        done=done.format(n=n) if done else None,
    )
