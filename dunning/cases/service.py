"""Open, update and close dunning cases from the ledger's current state.

A case's state is a function of the facts, not of the order events arrived in:
invoice paid -> recovered, void -> voided, uncollectible -> uncollectible,
subscription canceled -> canceled, paused by the end action -> paused (until paid:
then recovered, and the subscription's collection resumes), otherwise open. Every
change to an invoice or subscription recomputes it, under a lock on the invoice row,
so two workers applying events of one invoice at once serialise instead of racing.

This module is what the callers above the cases (event handlers, action handlers,
the self-serve page) call after the ledger changed. It asks the planner what comes
next and then plans the emails that go with it: the planner only decides and
schedules the charge actions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dunning.card_updater import plan as card_updater
from dunning.cases import card_fetch, planner
from dunning.cases.models import CaseState, DunningCase, RecoveredBy
from dunning.cases.payloads import resume_key
from dunning.db import among
from dunning.db import table as core_table
from dunning.ledger import apply
from dunning.ledger.locks import (
    lock_invoice,
    lock_invoices,
    share_subscription,
    share_subscriptions,
)
from dunning.ledger.models import ChargeAttempt, Invoice, TriggeredBy
from dunning.ledger.queries import (
    attempt_from_charge,
    charged_card,
    invoice_attempts,
    prefetch,
    reads_once,
)
from dunning.notify import sequence as emails
from dunning.policy.records import Decision
from dunning.processors import stripe_objects as so
from dunning.processors.stripe_adapter import PayResult
from dunning.scheduler.models import ActionKind
from dunning.scheduler.schedule import cancel_case_actions, upsert_action, written_together

_RECOVERED_BY: dict[str, RecoveredBy] = {
    TriggeredBy.SERVICE: RecoveredBy.RETRY,
    TriggeredBy.CUSTOMER: RecoveredBy.CUSTOMER,
    TriggeredBy.CARD_UPDATER: RecoveredBy.CARD_UPDATER,
}


@dataclass(frozen=True)
class Failure:
    """A failed charge of an invoice, as its case hears it: since when it failed, and
    since when the customer must authenticate it (``cases.authentication``), if so."""

    at: datetime
    awaiting_since: datetime | None = None

    @classmethod
    def of(cls, at: datetime, *, awaiting_action: bool = False) -> Failure:
        """A failure at ``at``; ``awaiting_action``: the customer must authenticate it."""
        return cls(at, at if awaiting_action else None)

    def merged(self, other: Failure) -> Failure:
        """Two failures of one invoice are one: the earliest of each time."""
        waits = [t for t in (self.awaiting_since, other.awaiting_since) if t is not None]
        return Failure(min(self.at, other.at), min(waits, default=None))


def on_failed_charge(
    session: Session,
    invoice_id: str,
    *,
    at: datetime,
    now: datetime | None = None,
    awaiting_action: bool = False,
) -> DunningCase:
    """A charge on the invoice failed: open its case (or keep it), bring it up to date,
    and ask the policy what comes next (``awaiting_action``: the customer must
    authenticate it, ``cases.authentication``)."""
    failure = Failure.of(at, awaiting_action=awaiting_action)
    return on_failed_charges(session, {invoice_id: failure}, now=now)[invoice_id]


@cache
def _open_cases() -> Any:
    """Open a case per invoice, keeping one that exists (built once, run for many rows)."""
    return insert(core_table(DunningCase)).on_conflict_do_nothing(index_elements=["invoice_id"])


def on_failed_charges(
    session: Session, failures: dict[str, Failure], *, now: datetime | None = None
) -> dict[str, DunningCase]:
    """``on_failed_charge`` for a batch of invoices: their locks, cases and ledger rows
    are read in a few statements, then each case is brought up to date and planned."""
    now = now or datetime.now(UTC)
    ids = sorted(failures)
    invoices = lock_invoices(session, {i: None for i in ids})
    session.execute(
        _open_cases(),
        [
            {
                "invoice_id": i,
                "customer_id": invoices[i].customer_id,
                "subscription_id": invoices[i].subscription_id,
                "state": CaseState.OPEN,
                "amount": invoices[i].amount_due,
                "currency": invoices[i].currency,
                "opened_at": failures[i].at,
            }
            for i in ids
        ],
    )
    found = {
        case.invoice_id: case
        for case in session.scalars(
            select(DunningCase)
            .where(among(DunningCase.invoice_id, ids))
            .order_by(DunningCase.invoice_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    }
    with reads_once(session), written_together(session), planner.recorded_together(session):
        share_subscriptions(session, [s for i in ids if (s := invoices[i].subscription_id)])
        prefetch(
            session,
            ids,
            [invoices[i].subscription_id for i in ids],
            [invoices[i].customer_id for i in ids],
            card_attempts_since=now - planner.CARD_HISTORY,
        )
        planner.prefetch_decisions(session, [case.id for case in found.values()])
        cards = [charged_card(session, found[i].subscription_id, found[i].customer_id) for i in ids]
        card_updater.prefetch_closed(session, sorted({card.id for card in cards if card}))
        for i in ids:
            _follow_failure(session, found[i], invoices[i], failures[i], now)
    return found


def _follow_failure(
    session: Session, case: DunningCase, invoice: Invoice, failure: Failure, now: datetime
) -> None:
    if failure.at < case.opened_at:
        case.opened_at = failure.at
    _refresh(session, case, invoice)
    if (
        failure.awaiting_since is not None
        and case.state == CaseState.OPEN
        and case.awaiting_action_since is None
    ):
        case.awaiting_action_since = failure.awaiting_since
    planner.case_policy(session, case)  # chosen once, even for a case already closed
    if case.state == CaseState.OPEN:
        card_fetch.plan_fetch(session, case, now)
    replan(session, case, now)


def replan(session: Session, case: DunningCase, now: datetime) -> Decision | None:
    """Ask the planner what comes next for the case, then the card updater calls a retry
    needs (a closed card's retry becomes a wait), then the emails that go with it."""
    decision = planner.plan(session, case, now)
    if decision is not None:
        decision = card_updater.after_decision(session, case, decision, now)
        emails.plan_case_emails(session, case, decision, now)
    return decision


def on_invoice_changed(session: Session, invoice_id: str) -> DunningCase | None:
    """The invoice changed: its case, if any, follows."""
    case = _case_for(session, invoice_id)
    if case is None:
        return None
    _refresh(session, case, lock_invoice(session, invoice_id))
    return case


def on_subscription_canceled(session: Session, subscription_id: str) -> None:
    """A canceled subscription ends its open cases: never charge a customer who left."""
    ids = session.scalars(
        select(DunningCase.invoice_id).where(DunningCase.subscription_id == subscription_id)
    ).all()
    for invoice_id in ids:
        on_invoice_changed(session, invoice_id)


@dataclass
class LedgerNews:
    """What a batch of ledger changes means for the cases, gathered while the events
    are applied and followed once per invoice after them (``follow``), so the order of
    events within a batch never matters and an invoice's case is planned once."""

    failures: dict[str, Failure] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    canceled_subscriptions: set[str] = field(default_factory=set)

    def failed(self, invoice_id: str, at: datetime, *, awaiting_action: bool = False) -> None:
        failure = Failure.of(at, awaiting_action=awaiting_action)
        old = self.failures.get(invoice_id)
        self.failures[invoice_id] = old.merged(failure) if old else failure

    def follow(self, session: Session) -> None:
        """Tell the cases: cancellations, then failures, then the other invoice changes
        (a failure's case is brought up to date with everything else anyway)."""
        for subscription_id in sorted(self.canceled_subscriptions):
            on_subscription_canceled(session, subscription_id)
        if self.failures:
            on_failed_charges(session, self.failures)
        for invoice_id in sorted(self.changed - self.failures.keys()):
            on_invoice_changed(session, invoice_id)


def _case_for(session: Session, invoice_id: str) -> DunningCase | None:
    return session.execute(
        select(DunningCase)
        .where(DunningCase.invoice_id == invoice_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _refresh(session: Session, case: DunningCase, invoice: Invoice) -> None:
    """Recompute the case from the invoice, its subscription and its attempts."""
    case.customer_id = invoice.customer_id or case.customer_id
    case.subscription_id = invoice.subscription_id or case.subscription_id
    if invoice.amount_due is not None:
        case.amount = invoice.amount_due
    case.currency = invoice.currency or case.currency
    with reads_once(session):  # the attempts, read once for the class and the first failure
        case.decline_class = planner.decline_class(session, case)
        attempts = invoice_attempts(session, case.invoice_id)
    # The first failed charge (time, then id) names the case's decline code and card brand
    # in the reports: its decline code, else its failure code (as migration 0016 filled).
    failures = [a for a in attempts if a.outcome == "failed"]
    first = min(failures, key=lambda a: (a.attempted_at, a.id), default=None)
    if first is None:
        case.first_decline_code = case.first_card_brand = None
    else:
        code = first.decline_code
        case.first_decline_code = first.failure_code if code is None else code
        case.first_card_brand = first.card_brand
    subscription = (
        share_subscription(session, case.subscription_id) if case.subscription_id else None
    )
    now = datetime.now(UTC)
    state, closed_at = CaseState.OPEN, None
    if invoice.status == "paid":
        state, closed_at = CaseState.RECOVERED, invoice.paid_at or now
    elif invoice.status == "void":
        state, closed_at = CaseState.VOIDED, invoice.voided_at or now
    elif invoice.status == "uncollectible":
        state, closed_at = CaseState.UNCOLLECTIBLE, invoice.marked_uncollectible_at or now
    elif subscription is not None and subscription.status == "canceled":
        state, closed_at = CaseState.CANCELED, subscription.canceled_at or now
    elif case.end_action == "leave_past_due":
        state, closed_at = CaseState.EXHAUSTED, case.closed_at or now
    elif case.end_action == "pause_subscription":
        state, closed_at = CaseState.PAUSED, case.closed_at or now
    if state == case.state and (case.closed_at is not None or closed_at is None):
        if state == CaseState.RECOVERED:  # a charge of ours recorded late names the channel
            case.recovered_by = _who_paid(session, invoice.id)
        return
    was_paused = case.state == CaseState.PAUSED
    case.state = state
    case.closed_at = closed_at
    case.recovered_amount = None
    case.recovered_by = None
    if state == CaseState.RECOVERED:
        case.awaiting_action_since = None  # paid: nobody waits for an authentication
        case.recovered_amount = invoice.amount_paid or case.amount
        case.recovered_by = _who_paid(session, invoice.id)
    if state != CaseState.OPEN:
        cancel_case_actions(session, case.id)
        emails.on_case_closed(session, case, datetime.now(UTC))
    if was_paused and state == CaseState.RECOVERED and case.subscription_id:
        upsert_action(  # paid while paused: collection resumes (once per case)
            session,
            key=resume_key(case.id),
            kind=ActionKind.RESUME_SUBSCRIPTION,
            due=now,
            payload={"subscription_id": case.subscription_id},
            case_id=case.id,
            revive_any_canceled=True,
        )


def _who_paid(session: Session, invoice_id: str) -> str:
    """The channel of the invoice's successful charge; the processor's own retry otherwise."""
    triggered_by = session.scalar(
        select(ChargeAttempt.triggered_by)
        .where(ChargeAttempt.invoice_id == invoice_id, ChargeAttempt.outcome == "succeeded")
        .order_by(ChargeAttempt.attempted_at.desc())
        .limit(1)
    )
    return _RECOVERED_BY.get(triggered_by or "", RecoveredBy.PROCESSOR)


def record_charge(
    session: Session,
    case_id: int,
    invoice_id: str,
    result: PayResult,
    now: datetime,
    *,
    ref: str,
    triggered_by: TriggeredBy,
) -> None:
    """Record a charge we made: it becomes a ledger row and the case follows the invoice.

    The one way every channel (retry, customer, card updater) records its charge, so
    the case's ``recovered_by`` always comes from the succeeded attempt's
    ``triggered_by``. ``ref`` names the charge within its channel (attempt number,
    SetupIntent id) when the processor reported no charge id.
    """
    charge = so.read_charge(result.charge) if result.charge else None
    values = attempt_from_charge(
        charge,
        attempt_key=charge.id if charge else f"{invoice_id}#{triggered_by}-{ref}",
        invoice_id=invoice_id,
        attempted_at=now,
        succeeded=result.paid,
        triggered_by=triggered_by,
        source_event_id=f"{_SOURCE_PREFIX.get(triggered_by, triggered_by)}:case-{case_id}:{ref}",
    )
    values["failure_code"] = values["failure_code"] or result.error_code
    values["failure_message"] = values["failure_message"] or result.message
    values["decline_code"] = values["decline_code"] or result.decline_code
    apply.record_attempt(session, values)
    apply.apply_invoice(session, result.invoice, int(time.time()))
    if result.paid:
        on_invoice_changed(session, invoice_id)
    else:
        on_failed_charge(session, invoice_id, at=now, now=now)


# Where a charge we made came from, in the ledger's ``source_event_id``.
_SOURCE_PREFIX = {TriggeredBy.SERVICE: "retry"}
