"""Performing a case's due actions: retry the charge once, or carry out the end action.

A charge retry runs in three steps so that a worker dying at any point never charges
twice. (1) Under the action's row lock: check the dispatch is current, re-read the
invoice at the processor, and mark the action running with a fingerprint of the
invoice's payment attempts. (2) Pay with ``Idempotency-Key = case + attempt number``.
(3) Record the outcome and plan what comes next. A rerun after a crash finds the
action running: if the processor's fingerprint moved, the earlier charge happened and
is recorded instead of charging again.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dunning.cases import planner
from dunning.cases import service as cases
from dunning.cases.models import CaseState, DunningCase
from dunning.db import session_scope
from dunning.ledger import apply
from dunning.notify import sequence as emails
from dunning.policy.records import DecisionKind
from dunning.processors import stripe_objects as so
from dunning.processors.stripe_adapter import (
    PayResult,
    ProcessorNotConfigured,
    StripeAdapter,
    TransientProcessorError,
    processor_ref,
)
from dunning.scheduler.models import ActionKind, ActionStatus, ScheduledAction

log = logging.getLogger(__name__)

# A retry that the network guard moved later than this is rescheduled, not run now.
_RUN_WINDOW = timedelta(minutes=5)
MAX_TRANSIENT_TRIES = 8


def idempotency_key(case_id: int, attempt_number: int) -> str:
    """The processor-side key of our charge for this case and attempt."""
    return f"dunning-case-{case_id}-attempt-{attempt_number}"


def run_action(adapter: StripeAdapter | None, action_id: int, dispatch: int, now: datetime) -> str:
    """Perform one dispatch of an action; safe to call any number of times.

    Emails need no processor (``adapter`` may be None for them) and are sent by
    ``dunning.notify.delivery``."""
    if action_kind(action_id) == ActionKind.SEND_EMAIL:
        from dunning.notify.delivery import run_email_action

        return run_email_action(action_id, dispatch, now)
    if adapter is None:
        raise ProcessorNotConfigured("DUNNING_STRIPE_API_KEY is not set")
    with session_scope() as session:
        action = _lock(session, action_id)
        if action is None or action.status not in ActionStatus.LEASED:
            return "skipped: not leased"
        if action.attempts != dispatch or action.started_attempt == dispatch:
            return "skipped: stale or duplicate dispatch"
        case = session.execute(
            select(DunningCase).where(DunningCase.id == action.case_id).with_for_update()
        ).scalar_one()
        if case.state != CaseState.OPEN or case.paused:
            _finish(action, ActionStatus.CANCELED, f"case is {case.state}", now)
            return "canceled"
        if action.kind == ActionKind.END_ACTION:
            return _end_action(session, adapter, action, case, now)
        prepared = _prepare_retry(session, adapter, action, case, dispatch, now)
        if prepared is not None:
            return prepared
        invoice_id, attempt = case.invoice_id, int(action.payload["attempt_number"])
    try:
        result = adapter.pay_invoice(invoice_id, idempotency_key(case.id, attempt))
    except TransientProcessorError as exc:
        return _postpone(action_id, now, exc)
    with session_scope() as session:
        action = _lock(session, action_id)
        if action is None or action.status == ActionStatus.DONE:
            return "skipped: finished by another dispatch"
        record_pay(session, case.id, invoice_id, result, now, ref=str(attempt))
        _finish(action, ActionStatus.DONE, "paid" if result.paid else "declined", now)
        return "paid" if result.paid else "declined"


def _postpone(action_id: int, now: datetime, exc: Exception) -> str:
    """A timeout, 429 or 5xx is not a card attempt: try again later, from Postgres.

    The action keeps ``started_attempt``, so the next run first checks whether the
    charge went through before it pays (with the same idempotency key)."""
    with session_scope() as session:
        action = _lock(session, action_id)
        if action is None or action.status != ActionStatus.RUNNING:
            return "skipped"
        if action.attempts >= MAX_TRANSIENT_TRIES:
            _finish(action, ActionStatus.FAILED, f"processor unavailable: {exc}", now)
            return "failed: processor unavailable"
        action.status = ActionStatus.PENDING
        action.due_at = now + timedelta(minutes=2**action.attempts)
        action.lease_expires_at = None
        action.result = f"processor unavailable, retrying: {exc}"
        return "postponed"


def action_kind(action_id: int) -> str | None:
    """The kind of an action, read without a lock (it never changes)."""
    with session_scope() as session:
        return session.scalar(select(ScheduledAction.kind).where(ScheduledAction.id == action_id))


def _lock(session: Session, action_id: int) -> ScheduledAction | None:
    return session.execute(
        select(ScheduledAction).where(ScheduledAction.id == action_id).with_for_update()
    ).scalar_one_or_none()


def _finish(action: ScheduledAction, status: str, result: str, now: datetime) -> None:
    action.status = status
    action.result = result
    action.completed_at = now
    action.lease_expires_at = None


def _apply_invoice(session: Session, invoice: dict[str, Any]) -> None:
    """Fold a fresh processor read of the invoice into the ledger and its case."""
    apply.apply_invoice(session, invoice, int(time.time()))
    cases.on_invoice_changed(session, invoice["id"])


def _prepare_retry(
    session: Session,
    adapter: StripeAdapter,
    action: ScheduledAction,
    case: DunningCase,
    dispatch: int,
    now: datetime,
) -> str | None:
    """Step 1. Returns an outcome when the retry must not charge, None to go ahead."""
    invoice = adapter.invoice(case.invoice_id)
    if invoice.get("status") != "open":
        _apply_invoice(session, invoice)
        _finish(action, ActionStatus.CANCELED, f"invoice is {invoice.get('status')}", now)
        return "canceled: invoice settled"
    if action.started_attempt is not None and processor_ref(invoice) != action.processor_ref:
        # An earlier dispatch charged and then died: record that charge, do not repeat it.
        attempt = int(action.payload["attempt_number"])
        charge = invoice.get("charge")
        if isinstance(charge, str):
            charge = adapter.charge(charge)
        result = PayResult(
            paid=False, invoice=invoice, charge=charge if isinstance(charge, dict) else None
        )
        record_pay(session, case.id, case.invoice_id, result, now, ref=str(attempt))
        _finish(action, ActionStatus.DONE, "declined (recovered after a crash)", now)
        return "declined: recorded the earlier charge"
    decision = planner.decide_for(session, case, now)
    if decision is None or decision.kind != DecisionKind.RETRY or decision.at is None:
        _finish(action, ActionStatus.CANCELED, "the policy no longer retries", now)
        planner.plan(session, case, now)
        return "canceled: no retry"
    if decision.at > now + _RUN_WINDOW:
        action.status = ActionStatus.PENDING
        action.due_at = decision.at
        action.result = f"moved: {decision.reason}"
        return "rescheduled"
    action.status = ActionStatus.RUNNING
    action.started_attempt = dispatch
    action.processor_ref = processor_ref(invoice)
    return None


# Where a charge we made came from, in the ledger's ``source_event_id``.
_SOURCE_PREFIX = {"service": "retry"}


def record_pay(
    session: Session,
    case_id: int,
    invoice_id: str,
    result: PayResult,
    now: datetime,
    *,
    ref: str,
    triggered_by: str = "service",
) -> None:
    """Record a charge we made: it becomes a ledger row and the case follows the invoice.

    The one way every channel (retry, customer, card updater) records its charge, so
    the case's ``recovered_by`` always comes from the succeeded attempt's
    ``triggered_by``. ``ref`` names the charge within its channel (attempt number,
    SetupIntent id) when the processor reported no charge id.
    """
    charge = so.read_charge(result.charge) if result.charge else None
    source = _SOURCE_PREFIX.get(triggered_by, triggered_by)
    apply.record_attempt(
        session,
        {
            "attempt_key": charge.id if charge else f"{invoice_id}#{triggered_by}-{ref}",
            "charge_id": charge.id if charge else None,
            "invoice_id": invoice_id,
            "customer_id": (charge.customer_id if charge else None),
            "attempted_at": now,
            "amount": (charge.amount if charge else None),
            "currency": (charge.currency if charge else None),
            "outcome": "succeeded" if result.paid else "failed",
            "failure_code": (charge.failure_code if charge else None) or result.error_code,
            "failure_message": (charge.failure_message if charge else None) or result.message,
            "decline_code": (charge.decline_code if charge else None) or result.decline_code,
            "network_decline_code": charge.network_decline_code if charge else None,
            "advice_code": charge.advice_code if charge else None,
            "network_advice_code": charge.network_advice_code if charge else None,
            "card_brand": charge.card_brand if charge else None,
            "card_last4": charge.card_last4 if charge else None,
            "card_fingerprint": charge.card_fingerprint if charge else None,
            "payment_method_id": charge.payment_method_id if charge else None,
            "triggered_by": triggered_by,
            "source_event_id": f"{source}:case-{case_id}:{ref}",
        },
    )
    apply.apply_invoice(session, result.invoice, int(time.time()))
    if result.paid:
        cases.on_invoice_changed(session, invoice_id)
    else:
        cases.on_failed_charge(session, invoice_id, at=now, now=now)


def _end_action(
    session: Session,
    adapter: StripeAdapter,
    action: ScheduledAction,
    case: DunningCase,
    now: datetime,
) -> str:
    """The policy gave up (or the deadline for a new card passed): do what it says."""
    end_action = str(action.payload.get("end_action", "leave_past_due"))
    key = f"dunning-case-{case.id}-end"
    if end_action == "cancel_subscription" and case.subscription_id:
        adapter.cancel_subscription(case.subscription_id, key)
        apply.apply_subscription(
            session, adapter.subscription(case.subscription_id), int(time.time())
        )
    elif end_action == "mark_uncollectible":
        _apply_invoice(session, adapter.mark_uncollectible(case.invoice_id, key))
    case.end_action = end_action
    cases.on_invoice_changed(session, case.invoice_id)
    emails.on_end_action(session, case, now)
    _finish(action, ActionStatus.DONE, end_action, now)
    return f"ended: {end_action}"


def utc(value: str) -> datetime:
    """Parse the sweeper's clock as sent in a task."""
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
