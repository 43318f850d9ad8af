"""One alert check, as beat runs it every few minutes: evaluate, record, tell.

1. Evaluate every condition: the database checks in one short read, the processor
   probe with no transaction open.
2. Record, in one transaction, each condition's state in ``alert_states`` (row lock):
   a condition that starts to hold begins a new episode; one that no longer holds
   clears. Several beats or overlapping runs agree, so an episode begins once.
3. Tell each new episode, outside any transaction: claim it with a short lease (one
   UPDATE), send each channel not yet sent, then mark what went. A failed channel is
   tried again by the next run while the condition holds; a crash after a send may
   repeat it once (a rare duplicate beats a missed alert, as for customer emails).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dunning.alerts import checks, delivery
from dunning.alerts.checks import Finding
from dunning.alerts.models import AlertState
from dunning.db import session_scope, table
from dunning.settings import Settings

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)  # longer than any send; only a crashed sender waits it out
Probe = Callable[[Settings], Finding | None]


@dataclass
class CheckResult:
    """What one run found and did (for the task's log and the tests)."""

    firing: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)  # "condition:channel"
    errors: list[str] = field(default_factory=list)


def evaluate(
    now: datetime, settings: Settings, probe: Probe | None = checks.processor_reachable
) -> dict[str, Finding | None]:
    """Every condition that could be evaluated: a finding, or None when it is clear."""
    found: dict[str, Finding | None] = {}
    with session_scope() as session:
        for condition, check in checks.DATABASE_CHECKS.items():
            found[condition] = check(session, now, settings)
    if probe is not None:  # no processor configured: nothing to be unreachable
        found[checks.PROCESSOR_UNREACHABLE] = probe(settings) if settings.stripe_api_key else None
    return found


def record(
    session: Session, found: dict[str, Finding | None], now: datetime, result: CheckResult
) -> None:
    """Update each evaluated condition's row under its lock."""
    if not found:
        return
    session.execute(
        insert(table(AlertState))
        .values([{"condition": c} for c in sorted(found)])
        .on_conflict_do_nothing(index_elements=["condition"])
    )
    rows = session.scalars(
        select(AlertState)
        .where(AlertState.condition.in_(sorted(found)))
        .order_by(AlertState.condition)
        .with_for_update()
    ).all()
    for row in rows:
        finding = found[row.condition]
        row.checked_at = now
        if finding is None:
            if row.firing:
                row.firing, row.cleared_at = False, now
                result.cleared.append(row.condition)
            continue
        result.firing.append(row.condition)
        row.summary, row.details = finding.summary, _jsonable(finding.details)
        if not row.firing:
            row.firing, row.episode, row.fired_at, row.cleared_at = True, row.episode + 1, now, None
            row.email_sent_at = row.webhook_sent_at = row.sending_until = None
            row.send_error = None
            result.started.append(row.condition)


def _jsonable(details: dict[str, object]) -> dict[str, object]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in details.items()}


@dataclass(frozen=True)
class _Owed:
    alert: delivery.Alert
    email: bool
    webhook: bool


def _claim(now: datetime, email: bool, webhook: bool) -> list[_Owed]:
    """Lease the firing episodes that still owe a channel (one statement, committed)."""
    owed = []
    if email:
        owed.append(AlertState.email_sent_at.is_(None))
    if webhook:
        owed.append(AlertState.webhook_sent_at.is_(None))
    if not owed:
        return []
    with session_scope() as session:
        claimed = session.execute(
            update(AlertState)
            .where(
                AlertState.firing.is_(True),
                or_(*owed),
                or_(AlertState.sending_until.is_(None), AlertState.sending_until < now),
            )
            .values(sending_until=now + LEASE)
            .returning(
                AlertState.condition,
                AlertState.episode,
                AlertState.summary,
                AlertState.details,
                AlertState.fired_at,
                AlertState.email_sent_at,
                AlertState.webhook_sent_at,
            )
        ).all()
    return [
        _Owed(
            delivery.Alert(r.condition, r.episode, r.summary, dict(r.details), r.fired_at or now),
            email=email and r.email_sent_at is None,
            webhook=webhook and r.webhook_sent_at is None,
        )
        for r in claimed
    ]


def send_pending(now: datetime, settings: Settings, result: CheckResult) -> None:
    """Tell every firing episode on each channel it has not reached yet."""
    email, webhook = delivery.email_channel(settings), delivery.webhook_channel(settings)
    for owed in _claim(now, email, webhook):
        alert = owed.alert
        sent: dict[str, datetime] = {}
        errors: list[str] = []
        for channel, owes, send in (
            ("email", owed.email, delivery.send_email),
            ("webhook", owed.webhook, delivery.send_webhook),
        ):
            if not owes:
                continue
            try:
                send(alert, settings)
            except delivery.AlertNotSent as exc:
                log.warning("alert %s not sent: %s", alert.condition, exc)
                errors.append(str(exc))
                continue
            sent[f"{channel}_sent_at"] = now
            result.sent.append(f"{alert.condition}:{channel}")
        result.errors += errors
        with session_scope() as session:
            session.execute(
                update(AlertState)
                .where(
                    and_(
                        AlertState.condition == alert.condition,
                        AlertState.episode == alert.episode,
                    )
                )
                .values(**sent, sending_until=None, send_error="; ".join(errors)[:2000] or None)
            )


def check(
    now: datetime, settings: Settings, probe: Probe | None = checks.processor_reachable
) -> CheckResult:
    """Evaluate, record and tell; what beat's task runs."""
    result = CheckResult()
    found = evaluate(now, settings, probe)
    with session_scope() as session:
        record(session, found, now, result)
    send_pending(now, settings, result)
    return result


def states() -> list[AlertState]:
    """Every condition's row (for the console), firing first."""
    with session_scope() as session:
        return list(
            session.scalars(
                select(AlertState).order_by(AlertState.firing.desc(), AlertState.condition)
            )
        )
