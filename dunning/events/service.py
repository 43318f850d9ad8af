"""Handling stored events: dispatch by type, once, recording failures for replay.

Each handler applies the event to the ledger, which returns what changed, and notes
what that means for the cases (``cases.service.LedgerNews``); once a batch's events are
applied, the cases follow, once per invoice (the ledger itself knows nothing of them;
docs/architecture.md).
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from dunning import queue
from dunning.cases import service as cases
from dunning.db import after_commit, among, session_scope
from dunning.events.models import EventStatus, ProcessorEvent
from dunning.events.store import INSERT_EVENTS_SQL, IncomingEvent, insert_params
from dunning.ledger import apply
from dunning.ledger.models import TriggeredBy

log = logging.getLogger(__name__)

MAX_AUTOMATIC_ATTEMPTS = 5
# Events per transaction: enough to share the claim and the commit, few enough that the
# invoice locks a batch holds are released within about a second.
TRANSACTION_EVENTS = 50
_RETRYABLE_PGCODES = {"40P01", "40001"}  # deadlock, serialization failure

# A handler applies a batch of events of its types (payload, stored row) to the ledger
# and notes what that means for the cases.
Batch = list[tuple[dict[str, Any], ProcessorEvent]]
Handler = Callable[[Session, Batch, cases.LedgerNews], None]
OneHandler = Callable[[Session, dict[str, Any], ProcessorEvent, cases.LedgerNews], None]

ACTION_REQUIRED = "invoice.payment_action_required"


def _one_by_one(handle: OneHandler) -> Handler:
    """A handler that applies its events one at a time."""

    def handler(session: Session, batch: Batch, news: cases.LedgerNews) -> None:
        for payload, event in batch:
            handle(session, payload, event, news)

    return handler


def _obj(payload: dict[str, Any]) -> dict[str, Any]:
    obj: dict[str, Any] = payload["data"]["object"]
    return obj


def _version(event: ProcessorEvent) -> int:
    return event.processor_created or int(event.received_at.timestamp())


def _invoices_failed(s: Session, batch: Batch, news: cases.LedgerNews) -> None:
    """``invoice.payment_failed`` and ``…payment_action_required`` (whose failure is
    ``authentication_required``, and whose case waits: ``cases.authentication``),
    applied together: the bulk of a renewal-day burst."""
    failures = [
        apply.InvoiceFailure(
            _obj(p),
            _version(e),
            e.event_id,
            TriggeredBy.PROCESSOR,
            "authentication_required" if e.type == ACTION_REQUIRED else None,
        )
        for p, e in batch
    ]
    for (invoice, at), (_, e) in zip(apply.apply_invoices_failed(s, failures), batch, strict=True):
        news.failed(invoice.id, at, awaiting_action=e.type == ACTION_REQUIRED)


@_one_by_one
def _invoice_state(
    s: Session, p: dict[str, Any], e: ProcessorEvent, news: cases.LedgerNews
) -> None:
    news.changed.add(apply.apply_invoice_state(s, _obj(p), _version(e)).id)


@_one_by_one
def _customer(s: Session, p: dict[str, Any], e: ProcessorEvent, news: cases.LedgerNews) -> None:
    apply.apply_customer(s, _obj(p), _version(e), deleted=e.type == "customer.deleted")


def _subscriptions(s: Session, batch: Batch, news: cases.LedgerNews) -> None:
    for subscription in apply.apply_subscriptions(s, [(_obj(p), _version(e)) for p, e in batch]):
        if subscription.status == "canceled":
            news.canceled_subscriptions.add(subscription.id)


@_one_by_one
def _payment_method(
    s: Session, p: dict[str, Any], e: ProcessorEvent, news: cases.LedgerNews
) -> None:
    apply.apply_payment_method(
        s,
        _obj(p),
        _version(e),
        detached=e.type == "payment_method.detached",
        network=e.type == "payment_method.automatically_updated",
    )


def _charges(s: Session, batch: Batch, news: cases.LedgerNews) -> None:
    charges = [(_obj(p), e.event_id) for p, e in batch]
    for charge in apply.apply_charges(s, charges, TriggeredBy.PROCESSOR):
        if charge.invoice_id and not charge.succeeded:
            news.failed(charge.invoice_id, charge.created or datetime.now(UTC))


@_one_by_one
def _invoice_payment(
    s: Session, p: dict[str, Any], e: ProcessorEvent, news: cases.LedgerNews
) -> None:
    attached = apply.apply_invoice_payment(s, _obj(p))
    if attached is None:
        return
    invoice_id, failed_at = attached
    if failed_at is not None:
        news.failed(invoice_id, failed_at)
    else:
        news.changed.add(invoice_id)


@_one_by_one
def _upcoming(s: Session, p: dict[str, Any], e: ProcessorEvent, news: cases.LedgerNews) -> None:
    apply.apply_upcoming(s, _obj(p), _version(e))


HANDLERS: dict[str, Handler] = {
    "invoice.payment_failed": _invoices_failed,
    ACTION_REQUIRED: _invoices_failed,
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
    "customer.subscription.created": _subscriptions,
    "customer.subscription.updated": _subscriptions,
    "customer.subscription.deleted": _subscriptions,
    "payment_method.attached": _payment_method,
    "payment_method.updated": _payment_method,
    "payment_method.detached": _payment_method,
    "payment_method.automatically_updated": _payment_method,
    "customer.source.expiring": _payment_method,
    "customer.source.created": _payment_method,
    "customer.source.updated": _payment_method,
    "charge.failed": _charges,
    "charge.succeeded": _charges,
    "invoice_payment.paid": _invoice_payment,
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
            with session_scope() as session:
                events = _claim(session, [event_pk])
                if not events:
                    return None
                [(status, _)] = _apply(session, events).items()
                _mark(session, [event_pk], status)
                return status
        except OperationalError as exc:
            if _sqlstate(exc) not in _RETRYABLE_PGCODES or attempt == 2:
                _record_failure(event_pk, exc)
                return EventStatus.FAILED
        except Exception as exc:
            _record_failure(event_pk, exc)
            return EventStatus.FAILED
    return None


def handle_events(event_pks: Sequence[int], *, top_up: bool = False) -> dict[str, int]:
    """Apply events, ``TRANSACTION_EVENTS`` to a transaction; count the outcomes.

    ``top_up`` (the workers): fill a short batch with the oldest other pending events.
    A burst's webhooks arrive as many small task messages, and a batch costs about the
    same few statements whatever its size; the messages of events applied this way find
    them handled and skip them.
    """
    pks = sorted(set(event_pks))
    counts: dict[str, int] = {}
    for first in range(0, len(pks), TRANSACTION_EVENTS):
        batch = pks[first : first + TRANSACTION_EVENTS]
        for status, n in _handle_batch(batch, top_up=top_up).items():
            counts[status] = counts.get(status, 0) + n
    return {status: n for status, n in counts.items() if n}


def _handle_batch(pks: list[int], *, top_up: bool = False) -> dict[str, int]:
    """Apply a batch of events in one transaction.

    One claim, one status update and one commit per batch is what makes a renewal-day
    burst cheap. Should any event of the batch fail (a bad payload, a lost deadlock),
    the batch rolls back and each event is applied on its own, so the failing one is
    recorded with its traceback and its neighbours are applied.
    """
    try:
        with session_scope() as session:
            events = _claim(session, pks, fill_to=TRANSACTION_EVENTS if top_up else 0)
            done = _apply(session, events)
            for status, ids in done.items():
                _mark(session, ids, status)
        counts = {status: len(ids) for status, ids in done.items()}
        counts["skipped"] = len(set(pks) - {event.id for event in events})
        return counts
    except Exception as exc:
        log.info("batch of %d events rolled back (%s); applying one by one", len(pks), exc)
    counts = {}
    for pk in pks:
        status = handle_event(pk) or "skipped"
        counts[status] = counts.get(status, 0) + 1
    return counts


def _claim(session: Session, pks: Sequence[int], *, fill_to: int = 0) -> list[ProcessorEvent]:
    """Lock the unhandled events among ``pks`` at once, skipping those another worker
    holds; with ``fill_to``, and the oldest other pending events up to that many."""
    wanted: ColumnElement[bool] = among(ProcessorEvent.id, pks)
    if fill_to > len(pks):
        others = (
            select(ProcessorEvent.id)
            .where(
                ProcessorEvent.handled_at.is_(None),
                ProcessorEvent.status == EventStatus.PENDING,
                ~among(ProcessorEvent.id, pks),
            )
            .order_by(ProcessorEvent.received_at)
            .limit(fill_to - len(pks))
            .with_for_update(skip_locked=True)
        )
        wanted = or_(wanted, ProcessorEvent.id.in_(others.scalar_subquery()))
    return list(
        session.scalars(
            select(ProcessorEvent)
            .where(wanted, ProcessorEvent.handled_at.is_(None))
            .order_by(ProcessorEvent.id)
            .with_for_update(skip_locked=True)
        )
    )


def _apply(session: Session, events: list[ProcessorEvent]) -> dict[str, list[int]]:
    """Apply claimed events in the caller's transaction: each type's handler once with
    all its events, then the cases follow once per invoice. Event ids by new status."""
    batches: dict[Handler, Batch] = {}
    done: dict[str, list[int]] = {}
    for event in events:
        handler = HANDLERS.get(event.type)
        if handler is None:
            done.setdefault(EventStatus.IGNORED, []).append(event.id)
            continue
        batches.setdefault(handler, []).append((json.loads(event.body), event))
        done.setdefault(EventStatus.HANDLED, []).append(event.id)
    news = cases.LedgerNews()
    for handler, batch in batches.items():
        handler(session, batch, news)
    news.follow(session)
    return done


def _mark(session: Session, pks: list[int], status: str) -> None:
    """Mark claimed events handled (or ignored) in one statement."""
    session.execute(
        update(ProcessorEvent)
        .where(among(ProcessorEvent.id, pks))
        .values(
            status=status,
            attempts=ProcessorEvent.attempts + 1,
            handled_at=func.now(),
            error=None,
            traceback=None,
        )
        .execution_options(synchronize_session=False)
    )


def _sqlstate(exc: OperationalError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def _record_failure(event_pk: int, exc: BaseException) -> None:
    log.warning("event %s failed: %s", event_pk, exc)
    with session_scope() as session:
        session.execute(
            update(ProcessorEvent)
            .where(ProcessorEvent.id == event_pk, ProcessorEvent.handled_at.is_(None))
            .values(
                status=EventStatus.FAILED,
                attempts=ProcessorEvent.attempts + 1,
                error=_error_text(exc),
                traceback="".join(traceback.format_exception(exc)),
            )
        )


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
