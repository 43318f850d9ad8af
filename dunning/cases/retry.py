"""The handlers of a case's charge actions: retry the charge once, or carry out the end.

The scheduler's runner (``dunning.scheduler.runner``) calls them in three steps, so a
worker dying at any point never charges twice:

1. ``prepare``, under the action's row lock: the case must be open and not paused.
   ``look``, no lock held: re-read the invoice at the processor. ``confirm``, under
   the lock again: ask the engine again (the ledger may have moved) and note a
   fingerprint of the invoice's payment attempts on the action.
2. ``perform``: pay with ``Idempotency-Key = case + attempt number``, no lock held.
3. ``record``: the charge becomes a ledger row and the case plans what comes next.

A rerun after a crash finds ``started_attempt`` set: if the processor's fingerprint
moved, the earlier dispatch charged, and that charge is recorded instead of charging
again. The end action calls the processor the same way, between two transactions.

A retry on a backup card (the policy's ``cascade``) pays with that payment method;
the end action ``pause_subscription`` pauses collection, and ``resume_subscription``
(planned by ``cases.service`` once a paused case's invoice is paid) resumes it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dunning.card_updater.plan import follows_hit
from dunning.cases import authentication, planner
from dunning.cases import service as cases
from dunning.cases.models import CaseState, DunningCase
from dunning.cases.payloads import (
    ChargePayload,
    end_idempotency_key,
    idempotency_key,
    resume_idempotency_key,
)
from dunning.ledger import apply
from dunning.ledger.models import Subscription, TriggeredBy
from dunning.notify import sequence as emails
from dunning.policy.records import DecisionKind
from dunning.processors.stripe_adapter import (
    PayResult,
    StripeAdapter,
    TransientProcessorError,
    processor_ref,
)
from dunning.scheduler.models import ActionKind, ActionStatus, ScheduledAction
from dunning.scheduler.runner import Finish, Look, NoLook, Perform, Reschedule, Step, backoff

# A retry that the network guard moved later than this is rescheduled, not run now.
_RUN_WINDOW = timedelta(minutes=5)
MAX_TRANSIENT_TRIES = 8
_MAX_BACKOFF = timedelta(hours=4)
ABANDONED_RETRY_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class ChargeWork:
    """What one charge (or end) needs, read under the lock."""

    case_id: int
    invoice_id: str
    subscription_id: str | None
    attempt_number: int
    end_action: str
    retry_now: bool
    processor_ref: str | None  # the invoice's payments as the last dispatch saw them
    triggered_by: TriggeredBy = TriggeredBy.SERVICE  # card_updater right after its hit
    payment_method: str | None = None  # a backup card; None: the card Stripe charges
    pause_behavior: str = "void"  # for the end action ``pause_subscription``


@dataclass(frozen=True)
class Seen:
    """What ``look`` read at the processor."""

    invoice: dict[str, Any]
    charge: dict[str, Any] | None


def _case(session: Session, action: ScheduledAction) -> DunningCase:
    return session.execute(
        select(DunningCase).where(DunningCase.id == action.case_id).with_for_update()
    ).scalar_one()


def _closed(case: DunningCase) -> Finish | None:
    """A closed or paused case needs none of its charge actions."""
    if case.state != CaseState.OPEN or case.paused:
        state = "paused" if case.state == CaseState.OPEN else case.state
        return Finish(ActionStatus.CANCELED, f"canceled: case is {state}")
    return None


def _work(case: DunningCase, action: ScheduledAction) -> ChargeWork:
    payload = ChargePayload.of(action.payload)
    return ChargeWork(
        case.id,
        case.invoice_id,
        case.subscription_id,
        payload.attempt_number,
        payload.end_action,
        payload.retry_now,
        action.processor_ref,
        payment_method=payload.payment_method,
        pause_behavior=payload.pause_behavior,
    )


class _ProcessorAction:
    """What the charge actions share: a processor, and what a transient error means."""

    transient: tuple[type[Exception], ...] = (TransientProcessorError,)

    def __init__(self, adapter: StripeAdapter) -> None:
        self.adapter = adapter

    def postpone(
        self,
        session: Session,
        action: ScheduledAction,
        work: ChargeWork,
        exc: Exception,
        now: datetime,
    ) -> Finish | Reschedule:
        """A timeout, 429 or 5xx is not a card attempt: try again later, from Postgres.

        The action keeps ``started_attempt``, so the next run first checks whether the
        charge went through before it pays (with the same idempotency key)."""
        if action.attempts >= MAX_TRANSIENT_TRIES:
            return Finish(ActionStatus.FAILED, f"failed: processor unavailable: {exc}")
        due = now + backoff(action.attempts, _MAX_BACKOFF)
        return Reschedule(due, f"processor unavailable, retrying: {exc}")


class RetryCharge(_ProcessorAction):
    """``retry_charge``: one charge attempt of the case's invoice."""

    kind = ActionKind.RETRY_CHARGE

    def prepare(
        self, session: Session, action: ScheduledAction, now: datetime
    ) -> Step | Look[ChargeWork]:
        case = _case(session, action)
        if action.started_attempt is None:  # else: first see what the lost dispatch did
            closed = _closed(case)
            if closed is not None:
                return closed
        return Look(_work(case, action))

    def look(self, work: ChargeWork) -> Seen:
        """The invoice as the processor has it now (and its charge, if it is new)."""
        invoice = self.adapter.invoice(work.invoice_id)
        charge = invoice.get("charge")
        if isinstance(charge, str) and processor_ref(invoice) != work.processor_ref:
            charge = self.adapter.charge(charge)
        return Seen(invoice, charge if isinstance(charge, dict) else None)

    def confirm(
        self, session: Session, action: ScheduledAction, work: ChargeWork, seen: Seen, now: datetime
    ) -> Step:
        case = _case(session, action)
        invoice = seen.invoice
        if follows_hit(session, case):  # the updater changed the card since the last failure
            work = replace(work, triggered_by=TriggeredBy.CARD_UPDATER)
        if action.started_attempt is not None and processor_ref(invoice) != action.processor_ref:
            # An earlier dispatch charged and then died: record that charge as ours (it
            # may have paid the invoice, and the case may have closed since), never
            # repeat it.
            paid = invoice.get("status") == "paid"
            self._record(session, work, PayResult(paid, invoice, seen.charge), now)
            outcome = "paid" if paid else "declined"
            return Finish(ActionStatus.DONE, f"{outcome} (recovered after a crash)")
        closed = _closed(case)
        if closed is not None:
            return closed
        if invoice.get("status") != "open":
            apply.apply_invoice(session, invoice, int(time.time()))
            cases.on_invoice_changed(session, case.invoice_id)
            return Finish(ActionStatus.CANCELED, "canceled: invoice settled")
        if authentication.is_waiting(case):  # the engine plans none; never charge off-session
            return Finish(ActionStatus.CANCELED, authentication.RETRY_REFUSED)
        decision = planner.decide_for(session, case, now, retry_now=work.retry_now)
        if decision is None or decision.kind != DecisionKind.RETRY or decision.at is None:
            action.status = ActionStatus.CANCELED  # before re-planning, which may revive it
            cases.replan(session, case, now)
            return Finish(ActionStatus.CANCELED, "canceled: no retry")
        if decision.at > now + _RUN_WINDOW:
            return Reschedule(decision.at, f"moved: {decision.reason}")
        action.processor_ref = processor_ref(invoice)
        card = decision.card.id if decision.card else None  # the engine's card as of now
        return Perform(replace(work, payment_method=card))

    def perform(self, work: ChargeWork) -> PayResult:
        return self.adapter.pay_invoice(
            work.invoice_id,
            idempotency_key(work.case_id, work.attempt_number),
            payment_method=work.payment_method,
        )

    def record(
        self,
        session: Session,
        action: ScheduledAction,
        work: ChargeWork,
        outcome: PayResult,
        now: datetime,
    ) -> Finish:
        self._record(session, work, outcome, now)
        return Finish(ActionStatus.DONE, "paid" if outcome.paid else "declined")

    def abandon(
        self, session: Session, action: ScheduledAction, now: datetime
    ) -> Finish | Reschedule:
        """Workers keep dying on it: try again in a day (the next dispatch first checks
        whether a lost one charged)."""
        return Reschedule(now + ABANDONED_RETRY_AFTER, "its workers kept dying; retrying later")

    @staticmethod
    def _record(session: Session, work: ChargeWork, result: PayResult, now: datetime) -> None:
        cases.record_charge(
            session,
            work.case_id,
            work.invoice_id,
            result,
            now,
            ref=str(work.attempt_number),
            triggered_by=work.triggered_by,
        )


class EndCase(NoLook, _ProcessorAction):
    """``end_action``: the policy gave up (or ops wrote the invoice off): do what it says."""

    kind = ActionKind.END_ACTION

    def prepare(self, session: Session, action: ScheduledAction, now: datetime) -> Step:
        case = _case(session, action)
        return _closed(case) or Perform(_work(case, action))

    def perform(self, work: ChargeWork) -> dict[str, Any] | None:
        """The processor's object after the end action (none for ``leave_past_due``)."""
        key = end_idempotency_key(work.case_id)
        if work.end_action == "cancel_subscription" and work.subscription_id:
            self.adapter.cancel_subscription(work.subscription_id, key)
            return self.adapter.subscription(work.subscription_id)
        if work.end_action == "pause_subscription" and work.subscription_id:
            return self.adapter.pause_subscription(work.subscription_id, work.pause_behavior, key)
        if work.end_action == "mark_uncollectible":
            return self.adapter.mark_uncollectible(work.invoice_id, key)
        return None

    def record(
        self,
        session: Session,
        action: ScheduledAction,
        work: ChargeWork,
        outcome: dict[str, Any] | None,
        now: datetime,
    ) -> Finish:
        version = int(time.time())
        if outcome is not None and work.end_action in _SUBSCRIPTION_ENDS:
            _apply_paused(session, outcome, version)
        elif outcome is not None:
            apply.apply_invoice(session, outcome, version)
        case = _case(session, action)
        case.end_action = work.end_action
        cases.on_invoice_changed(session, case.invoice_id)
        emails.on_end_action(session, case, now)
        return Finish(ActionStatus.DONE, f"ended: {work.end_action}")

    def abandon(
        self, session: Session, action: ScheduledAction, now: datetime
    ) -> Finish | Reschedule:
        return Reschedule(now + timedelta(hours=1), "its workers kept dying; retrying later")


_SUBSCRIPTION_ENDS = ("cancel_subscription", "pause_subscription")


def _apply_paused(session: Session, subscription: dict[str, Any], version: int) -> None:
    """The subscription as Stripe answered, with ``pause_collection.behavior`` (null when
    collection runs) on its row: the one fact the case's pause and resume hinge on."""
    apply.apply_subscription(session, subscription, version)
    row = session.get(Subscription, subscription["id"])
    if row is not None:
        paused = subscription.get("pause_collection") or {}
        row.pause_behavior = paused.get("behavior") if isinstance(paused, dict) else None


class ResumeSubscription(NoLook, _ProcessorAction):
    """``resume_subscription``: a paused case's invoice was paid: collection resumes."""

    kind = ActionKind.RESUME_SUBSCRIPTION

    def prepare(self, session: Session, action: ScheduledAction, now: datetime) -> Step:
        case = _case(session, action)
        row = session.get(Subscription, case.subscription_id) if case.subscription_id else None
        if row is None or row.pause_behavior is None:
            return Finish(ActionStatus.DONE, "not paused: nothing to resume")
        return Perform(_work(case, action))

    def perform(self, work: ChargeWork) -> dict[str, Any]:
        assert work.subscription_id is not None  # prepare checked
        return self.adapter.resume_subscription(
            work.subscription_id, resume_idempotency_key(work.case_id)
        )

    def record(
        self,
        session: Session,
        action: ScheduledAction,
        work: ChargeWork,
        outcome: dict[str, Any],
        now: datetime,
    ) -> Finish:
        _apply_paused(session, outcome, int(time.time()))
        return Finish(ActionStatus.DONE, "resumed: collection restarted")

    def abandon(
        self, session: Session, action: ScheduledAction, now: datetime
    ) -> Finish | Reschedule:
        return Reschedule(now + timedelta(hours=1), "its workers kept dying; retrying later")
