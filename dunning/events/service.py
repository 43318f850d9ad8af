"""Handling stored events: dispatch by type, once, recording failures for replay.

Each handler applies the event to the ledger, which returns what changed, and then
tells the cases (the ledger itself knows nothing of them; docs/architecture.md).
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from dunning import queue
from dunning.cases import service as cases
from dunning.db import after_commit, session_scope
from dunning.events.models import EventStatus, ProcessorEvent
from dunning.events.store import INSERT_EVENTS_SQL, IncomingEvent, insert_params
from dunning.ledger import apply
from dunning.ledger.models import TriggeredBy

log = logging.getLogger(__name__)

MAX_AUTOMATIC_ATTEMPTS = 5
_RETRYABLE_PGCODES = {"40P01", "40001"}  # deadlock, serialization failure

Handler = Callable[[Session, dict[str, Any], ProcessorEvent], None]


def _obj(payload: dict[str, Any]) -> dict[str, Any]:
    obj: dict[str, Any] = payload["data"]["object"]
    return obj


def _version(event: ProcessorEvent) -> int:
    return event.processor_created or int(event.received_at.timestamp())


def _invoice_failed(s: Session, p: dict[str, Any], e: ProcessorEvent) -> None:
    invoice, at = apply.apply_invoice_failed(
        s, _obj(p), _version(e), e.event_id, triggered_by=TriggeredBy.PROCESSOR
    )
    cases.on_failed_charge(s, invoice.id, at=at)


def _invoice_state(s: Session, p: dict[str, Any], e: ProcessorEvent) -> None:
    invoice = apply.apply_invoice_state(s, _obj(p), _version(e))
    cases.on_invoice_changed(s, invoice.id)


def _customer(s: Session, p: dict[str, Any], e: ProcessorEvent) -> None:
    apply.apply_customer(s, _obj(p), _version(e), deleted=e.type == "customer.deleted")


def _subscription(s: Session, p: dict[str, Any], e: ProcessorEvent) -> None:
    subscription = apply.apply_subscription(s, _obj(p), _version(e))
    if subscription.status == "canceled":
        cases.on_subscription_canceled(s, subscription.id)


def _payment_method(s: Session, p: dict[str, Any], e: ProcessorEvent) -> None:
    apply.apply_payment_method(
        s,
        _obj(p),
        _version(e),
        detached=e.type == "payment_method.detached",
        network=e.type == "payment_method.automatically_updated",
    )


def _charge(s: Session, p: dict[str, Any], e: ProcessorEvent) -> None:
    charge = apply.apply_charge(s, _obj(p), e.event_id, triggered_by=TriggeredBy.PROCESSOR)
    if charge.invoice_id and not charge.succeeded:
        cases.on_failed_charge(s, charge.invoice_id, at=charge.created or datetime.now(UTC))


def _upcoming(s: Session, p: dict[str, Any], e: ProcessorEvent) -> None:
    apply.apply_upcoming(s, _obj(p), _version(e))


HANDLERS: dict[str, Handler] = {
    "invoice.payment_failed": _invoice_failed,
    "invoice.payment_succeeded": _invoice_state,
    "invoice.paid": _invoice_state,
    "invoice.voided": _invoice_state,
    "invoice.marked_uncollectible": _invoice_state,
    "invoice.created": _invoice_state,
    "invoice.finalized": _invoice_state,
    "invoice.updated": _invoice_state,
    "invoice.upcoming": _upcoming,
    "customer.created": _customer,
    "customer.updated": _customer,
    "customer.deleted": _customer,
    "customer.subscription.created": _subscription,
    "customer.subscription.updated": _subscription,
    "customer.subscription.deleted": _subscription,
    "payment_method.attached": _payment_method,
    "payment_method.updated": _payment_method,
    "payment_method.detached": _payment_method,
    "payment_method.automatically_updated": _payment_method,
    "customer.source.expiring": _payment_method,
    "customer.source.created": _payment_method,
    "customer.source.updated": _payment_method,
    "charge.failed": _charge,
    "charge.succeeded": _charge,
}


def store_events(session: Session, events: list[IncomingEvent]) -> list[int]:
    """Store events in the caller's transaction; the new ones are applied after commit."""
    if not events:
        return []
    rows = session.connection().exec_driver_sql(INSERT_EVENTS_SQL, insert_params(events))
    new_ids = [row[0] for row in rows]
    if new_ids:
        after_commit(session, lambda: queue.send_apply_events(new_ids))
    return new_ids


def handle_event(event_pk: int) -> str | None:
    """Apply one stored event in its own transaction; safe to call any number of times.

    Returns the event's new status, or None when it was already handled or is being
    handled by another worker right now.
    """
    for attempt in range(3):
        try:
            return _handle_once(event_pk)
        except OperationalError as exc:
            code = getattr(exc.orig, "sqlstate", None)
            if code not in _RETRYABLE_PGCODES or attempt == 2:
                _record_failure(event_pk, exc)
                return EventStatus.FAILED
        except Exception as exc:
            _record_failure(event_pk, exc)
            return EventStatus.FAILED
    return None


def _handle_once(event_pk: int) -> str | None:
    with session_scope() as session:
        event = session.execute(
            select(ProcessorEvent)
            .where(ProcessorEvent.id == event_pk)
            .with_for_update(skip_locked=True)
        ).scalar_one_or_none()
        if event is None or event.handled_at is not None:
            return None
        handler = HANDLERS.get(event.type)
        if handler is None:
            event.status = EventStatus.IGNORED
        else:
            handler(session, json.loads(event.body), event)
            event.status = EventStatus.HANDLED
        event.attempts += 1
        event.handled_at = datetime.now(UTC)
        event.error = None
        event.traceback = None
        return event.status


def _record_failure(event_pk: int, exc: BaseException) -> None:
    log.warning("event %s failed: %s", event_pk, exc)
    with session_scope() as session:
        session.execute(
            update(ProcessorEvent)
            .where(ProcessorEvent.id == event_pk, ProcessorEvent.handled_at.is_(None))
            .values(
                status=EventStatus.FAILED,
                attempts=ProcessorEvent.attempts + 1,
                error=f"{type(exc).__name__}: {exc}"[:2000],
                traceback="".join(traceback.format_exception(exc)),
            )
        )


def handle_events(event_pks: Sequence[int]) -> dict[str, int]:
    """Apply several events, each in its own transaction; count the outcomes."""
    counts: dict[str, int] = {}
    for pk in event_pks:
        status = handle_event(pk) or "skipped"
        counts[status] = counts.get(status, 0) + 1
    return counts


def unhandled_event_ids(grace: timedelta, limit: int = 1000) -> list[int]:
    """Events nobody handled within ``grace`` (lost task, broker outage, failure to retry)."""
    cutoff = datetime.now(UTC) - grace
    with session_scope() as session:
        return list(
            session.scalars(
                select(ProcessorEvent.id)
                .where(
                    ProcessorEvent.handled_at.is_(None),
                    ProcessorEvent.received_at < cutoff,
                    or_(
                        ProcessorEvent.status == EventStatus.PENDING,
                        ProcessorEvent.attempts < MAX_AUTOMATIC_ATTEMPTS,
                    ),
                )
                .order_by(ProcessorEvent.received_at)
                .limit(limit)
            )
        )


def sweep_unhandled(grace: timedelta) -> int:
    """Re-send unhandled events to the workers; returns how many were sent."""
    ids = unhandled_event_ids(grace)
    for start in range(0, len(ids), 100):
        queue.send_apply_events(ids[start : start + 100])
    return len(ids)


def reset_for_replay(*, failed_only: bool, since: datetime | None) -> list[int]:
    """Mark events to be applied again and return their ids (oldest first)."""
    with session_scope() as session:
        stmt = update(ProcessorEvent).values(
            handled_at=None, status=EventStatus.PENDING, attempts=0
        )
        if failed_only:
            stmt = stmt.where(ProcessorEvent.status == EventStatus.FAILED)
        if since is not None:
            stmt = stmt.where(ProcessorEvent.received_at >= since)
        ids = session.scalars(stmt.returning(ProcessorEvent.id)).all()
    return sorted(ids)
