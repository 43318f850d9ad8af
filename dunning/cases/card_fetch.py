"""Fetch the card a case's subscription is charged with, when the ledger has none.

A case can open from ``invoice.payment_failed`` alone: no ``payment_method.*`` webhook
came, and the charge may carry no card details. Its emails would then say "card
ending in ••••" while the customer's page (which asks the processor) names the card.
So a case that opens without a known card plans one ``fetch_card`` action, due at
once: the runner reads the customer, the subscription and the charged card at the
processor (outside any transaction) and folds them into the ledger. The case's emails
wait a little for it (``notify.delivery``), never more than ``WAIT_FOR_CARD``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from dunning.cases.models import DunningCase
from dunning.ledger import apply
from dunning.ledger.queries import charged_card
from dunning.processors.stripe_adapter import ChargedCard, StripeAdapter, TransientProcessorError
from dunning.scheduler.models import ActionKind, ActionStatus, ScheduledAction
from dunning.scheduler.runner import Finish, NoLook, Perform, Reschedule, Step, backoff
from dunning.scheduler.schedule import upsert_action
from dunning.settings import get_settings

MAX_TRIES = 5


def fetch_key(case_id: int) -> str:
    return f"case:{case_id}:fetch-card"


def card_known(session: Session, case: DunningCase) -> bool:
    card = charged_card(session, case.subscription_id, case.customer_id)
    return card is not None and bool(card.last4)


def plan_fetch(session: Session, case: DunningCase, now: datetime) -> None:
    """Plan the fetch when the ledger does not know the case's card (and there is a
    processor to ask)."""
    if not get_settings().stripe_api_key:
        return
    if case.customer_id and not card_known(session, case):
        upsert_action(
            session,
            key=fetch_key(case.id),
            kind=ActionKind.FETCH_CARD,
            due=now,
            payload={"customer_id": case.customer_id, "subscription_id": case.subscription_id},
            case_id=case.id,
            revive_any_canceled=False,
        )


@dataclass(frozen=True)
class FetchWork:
    customer_id: str
    subscription_id: str | None


class FetchCard(NoLook):
    """``fetch_card``: read the charged card at the processor into the ledger."""

    kind = ActionKind.FETCH_CARD
    transient: tuple[type[Exception], ...] = (TransientProcessorError,)

    def __init__(self, adapter: StripeAdapter) -> None:
        self.adapter = adapter

    def prepare(self, session: Session, action: ScheduledAction, now: datetime) -> Step:
        case = session.get(DunningCase, action.case_id) if action.case_id else None
        if case is None or not case.customer_id:
            return Finish(ActionStatus.CANCELED, "canceled: no customer")
        if card_known(session, case):
            return Finish(ActionStatus.DONE, "card already known")
        return Perform(FetchWork(case.customer_id, case.subscription_id))

    def perform(self, work: FetchWork) -> ChargedCard:
        return self.adapter.charged_card(work.customer_id, work.subscription_id)

    def record(
        self,
        session: Session,
        action: ScheduledAction,
        work: FetchWork,
        outcome: ChargedCard,
        now: datetime,
    ) -> Finish:
        version = int(time.time())
        apply.apply_customer(session, outcome.customer, version)
        subscription = outcome.subscription
        if subscription is not None and subscription.get("status") != "canceled":
            # (a cancellation reaches the case through its webhook or the reconciler)
            apply.apply_subscription(session, subscription, version)
        if outcome.payment_method is None:
            return Finish(ActionStatus.DONE, "no card on file")
        apply.apply_payment_method(session, outcome.payment_method, version)
        return Finish(ActionStatus.DONE, "card fetched")

    def postpone(
        self,
        session: Session,
        action: ScheduledAction,
        work: FetchWork,
        exc: Exception,
        now: datetime,
    ) -> Finish | Reschedule:
        if action.attempts >= MAX_TRIES:
            return Finish(ActionStatus.FAILED, f"failed: processor unavailable: {exc}")
        return Reschedule(now + backoff(action.attempts, timedelta(minutes=30)), str(exc))

    def abandon(
        self, session: Session, action: ScheduledAction, now: datetime
    ) -> Finish | Reschedule:
        return Finish(ActionStatus.FAILED, "failed: its workers kept dying")
