"""The alert conditions: each check says whether its condition holds now, and why.

A check returns a ``Finding`` when its condition holds, ``None`` when it does not,
and is left out when it cannot tell (no processor configured): an unknown never
clears an alert. The renewal failure rate is the finance reports' own definition
(``reports.metrics.sql.RENEWAL``: cases opened on renewal invoices against renewals
paid without a case), over hours instead of days.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import stripe
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from dunning.events.models import EventStatus, ProcessorEvent
from dunning.processors.stripe_adapter import StripeAdapter
from dunning.reports.metrics.sql import RENEWAL
from dunning.scheduler.models import ActionStatus, ScheduledAction
from dunning.settings import Settings

FAILURE_RATE = "renewal_failure_rate"
WEBHOOK_BACKLOG = "webhook_backlog"
FAILED_EVENTS = "failed_events"
FAILED_ACTIONS = "failed_actions"
PROCESSOR_UNREACHABLE = "processor_unreachable"
CONDITIONS = (FAILURE_RATE, WEBHOOK_BACKLOG, FAILED_EVENTS, FAILED_ACTIONS, PROCESSOR_UNREACHABLE)

TRAILING = timedelta(weeks=4)
MIN_RISE = 0.05  # and at least 5 points above the usual rate: 0.4 % -> 1 % is no alarm
PROBE_CUSTOMER = "cus_dunning_reachability_probe"  # never exists: a 404 proves we got in


@dataclass(frozen=True)
class Finding:
    """A condition that holds: one line for the alert's title and the figures behind it."""

    condition: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


_RENEWALS = f"""
    SELECT
      (SELECT count(*) FROM dunning_cases c
        WHERE c.opened_at >= :start AND c.opened_at < :end
          AND EXISTS (SELECT 1 FROM invoices i WHERE i.id = c.invoice_id
                      AND {RENEWAL.format(case_subscription="c.subscription_id")})) AS failed,
      (SELECT count(*) FROM invoices i
        WHERE i.subscription_id IS NOT NULL AND i.paid_at >= :start AND i.paid_at < :end
          AND i.status = 'paid' AND coalesce(i.amount_paid, i.amount_due, 0) > 0
          AND {RENEWAL.format(case_subscription="NULL")}
          AND NOT EXISTS (SELECT 1 FROM dunning_cases c WHERE c.invoice_id = i.id)) AS paid
"""


def _renewals(session: Session, start: datetime, end: datetime) -> tuple[int, int]:
    """(renewals first charged in [start, end), those whose first charge failed)."""
    row = session.execute(text(_RENEWALS), {"start": start, "end": end}).one()
    failed, paid = int(row.failed), int(row.paid)
    return failed + paid, failed


def failure_rate(session: Session, now: datetime, settings: Settings) -> Finding | None:
    """The renewal failure rate of the last hours, far above its trailing 4 weeks."""
    window = timedelta(hours=settings.alert_failure_window_hours)
    attempted, failed = _renewals(session, now - window, now)
    base_attempted, base_failed = _renewals(session, now - window - TRAILING, now - window)
    minimum = settings.alert_failure_min_renewals
    if attempted < minimum or base_attempted < minimum:
        return None  # too few renewals to tell a trend from chance
    rate, usual = failed / attempted, base_failed / base_attempted
    if rate < usual * settings.alert_failure_rate_factor or rate - usual < MIN_RISE:
        return None
    hours = settings.alert_failure_window_hours
    return Finding(
        FAILURE_RATE,
        f"renewal failure rate {rate:.1%} in the last {hours} h, usually {usual:.1%}",
        {
            "rate": round(rate, 4),
            "failed": failed,
            "renewals": attempted,
            "usual_rate": round(usual, 4),
            "usual_failed": base_failed,
            "usual_renewals": base_attempted,
            "window_hours": hours,
        },
    )


def webhook_backlog(session: Session, now: datetime, settings: Settings) -> Finding | None:
    """Events stored but not handled for longer than the backlog limit (workers down?)."""
    minutes = settings.alert_backlog_minutes
    count, oldest = session.execute(
        select(func.count(), func.min(ProcessorEvent.received_at)).where(
            ProcessorEvent.handled_at.is_(None),
            ProcessorEvent.status == EventStatus.PENDING,
            ProcessorEvent.received_at < now - timedelta(minutes=minutes),
        )
    ).one()
    if not count:
        return None
    return Finding(
        WEBHOOK_BACKLOG,
        f"{count} webhook events waiting more than {minutes} min to be handled",
        {"events": int(count), "oldest_received_at": oldest, "minutes": minutes},
    )


def failed_events(session: Session, now: datetime, settings: Settings) -> Finding | None:
    """Events whose handling failed and that nobody replayed yet."""
    count, error = session.execute(
        select(func.count(), func.max(ProcessorEvent.error)).where(
            ProcessorEvent.handled_at.is_(None), ProcessorEvent.status == EventStatus.FAILED
        )
    ).one()
    if not count:
        return None
    return Finding(
        FAILED_EVENTS,
        f"{count} webhook events failed (dunning events replay --failed applies them again)",
        {"events": int(count), "an_error": error},
    )


def failed_actions(session: Session, now: datetime, settings: Settings) -> Finding | None:
    """Scheduled actions (retries, emails, end actions) that gave up in the last hours;
    those that only skipped an email already dealt with are not failures of the service."""
    hours = settings.alert_failed_window_hours
    count, result = session.execute(
        select(func.count(), func.max(ScheduledAction.result)).where(
            ScheduledAction.status == ActionStatus.FAILED,
            ScheduledAction.completed_at >= now - timedelta(hours=hours),
            ~func.coalesce(ScheduledAction.result, "").startswith("skipped:"),
        )
    ).one()
    if not count:
        return None
    return Finding(
        FAILED_ACTIONS,
        f"{count} scheduled actions failed in the last {hours} h",
        {"actions": int(count), "a_result": result, "window_hours": hours},
    )


DATABASE_CHECKS: dict[str, Callable[[Session, datetime, Settings], Finding | None]] = {
    FAILURE_RATE: failure_rate,
    WEBHOOK_BACKLOG: webhook_backlog,
    FAILED_EVENTS: failed_events,
    FAILED_ACTIONS: failed_actions,
}


def processor_reachable(settings: Settings) -> Finding | None:
    """Whether the processor's API answers us: a read of a customer that never exists
    must come back as "no such customer" (reached, key accepted)."""
    adapter = StripeAdapter.from_settings(settings)
    try:
        adapter.customer(PROBE_CUSTOMER)
    except stripe.InvalidRequestError:
        return None
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        return Finding(
            PROCESSOR_UNREACHABLE,
            "the processor refuses the API key",
            {"error": f"{type(exc).__name__}: {exc}"[:500]},
        )
    except stripe.StripeError as exc:
        return Finding(
            PROCESSOR_UNREACHABLE,
            "the processor's API cannot be reached",
            {"error": f"{type(exc).__name__}: {exc}"[:500], "api_base": settings.stripe_api_base},
        )
    return None
