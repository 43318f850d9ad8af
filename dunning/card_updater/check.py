"""The ``check_card`` action (and ``fetch_card``, its first-read reason): ask the
provider about a case's card, fold the answer into the ledger, and re-plan on a hit.

Run by the one runner (``dunning.scheduler.runner``): ``prepare`` reads the card the
ledger knows under the lock, ``perform`` asks the provider with no transaction open,
``record`` writes the ``card_updater_requests`` row and the processor's objects, and
for a changed card (a card update for the engine: the case retries once with it at
once) or a closed account re-plans the case. An ``expiring`` check (``expiring.py``)
has no case: its answer only refreshes the ledger before the renewal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from dunning.card_updater.models import CardUpdaterRequest
from dunning.card_updater.plan import Reason, expires_before, known_card
from dunning.card_updater.provider import HITS, Answer, CardQuery, KnownCard, Provider, Result
from dunning.cases import card_fetch
from dunning.cases import service as cases
from dunning.cases.models import CaseState, DunningCase
from dunning.ledger import apply
from dunning.ledger.models import Subscription
from dunning.ledger.queries import charged_card, renews
from dunning.processors import stripe_objects as so
from dunning.scheduler.models import ActionKind, ActionStatus, ScheduledAction
from dunning.scheduler.runner import Finish, NoLook, Perform, Reschedule, Step, backoff

MAX_TRIES = 5
_REPLANS = (*HITS, Result.ACCOUNT_CLOSED)


@dataclass(frozen=True)
class CheckWork:
    case_id: int | None  # None: the daily scan of expiring cards (``expiring``)
    reason: Reason
    query: CardQuery


class CheckCard(NoLook):
    """One provider call about a case's charged card."""

    def __init__(self, provider: Provider, kind: ActionKind = ActionKind.CHECK_CARD) -> None:
        self.provider = provider
        self.kind = kind
        self.transient = provider.transient

    def _reason(self, action: ScheduledAction) -> Reason:
        default = Reason.FETCH if self.kind == ActionKind.FETCH_CARD else Reason.BEFORE_RETRY
        return Reason(action.payload.get("reason", default))

    def prepare(self, session: Session, action: ScheduledAction, now: datetime) -> Step:
        reason = self._reason(action)
        if reason == Reason.EXPIRING:
            return self._prepare_expiring(session, action)
        case = session.get(DunningCase, action.case_id) if action.case_id else None
        if case is None or not case.customer_id:
            return Finish(ActionStatus.CANCELED, "canceled: no customer")
        if reason == Reason.FETCH:
            if card_fetch.card_known(session, case):
                return Finish(ActionStatus.DONE, "card already known")
        elif case.state != CaseState.OPEN:
            return Finish(ActionStatus.CANCELED, f"canceled: case is {case.state}")
        query = CardQuery(case.customer_id, case.subscription_id, known_card(session, case))
        return Perform(CheckWork(case.id, reason, query))

    def _prepare_expiring(self, session: Session, action: ScheduledAction) -> Step:
        """Still worth asking: the subscription renews and its card still expires first."""
        subscription = session.get(Subscription, action.payload.get("subscription_id"))
        if subscription is None or not renews(subscription):
            return Finish(ActionStatus.CANCELED, "canceled: the subscription no longer renews")
        card = charged_card(session, subscription.id, subscription.customer_id)
        renewal = subscription.current_period_end
        if card is None or renewal is None or not expires_before(card, renewal):
            return Finish(ActionStatus.DONE, "card no longer expires before the renewal")
        known = KnownCard(card.id, card.fingerprint, card.last4, card.exp_month, card.exp_year)
        query = CardQuery(subscription.customer_id or "", subscription.id, known)
        return Perform(CheckWork(None, Reason.EXPIRING, query))

    def perform(self, work: CheckWork) -> Answer:
        return self.provider.ask(work.query)

    def record(
        self,
        session: Session,
        action: ScheduledAction,
        work: CheckWork,
        outcome: Answer,
        now: datetime,
    ) -> Finish:
        version = int(time.time())
        if outcome.customer is not None:
            apply.apply_customer(session, outcome.customer, version)
        subscription = outcome.subscription
        if subscription is not None and subscription.get("status") != "canceled":
            # (a cancellation reaches the case through its webhook or the reconciler)
            apply.apply_subscription(session, subscription, version)
        current = outcome.payment_method
        if current is not None:
            hit = outcome.result in HITS  # the engine sees it as a network card update
            apply.apply_payment_method(session, current, version, network=hit)
        self._row(session, action, work, outcome, now)
        if work.case_id is None:
            return Finish(ActionStatus.DONE, str(outcome.result))
        if outcome.result in _REPLANS or work.reason == Reason.FETCH:
            # (a first read may bring the card's expiry or time zone: the plan may move)
            case = session.execute(
                select(DunningCase).where(DunningCase.id == work.case_id).with_for_update()
            ).scalar_one()
            if case.state == CaseState.OPEN:
                cases.replan(session, case, now)
        return Finish(ActionStatus.DONE, str(outcome.result))

    def _row(
        self,
        session: Session,
        action: ScheduledAction,
        work: CheckWork,
        outcome: Answer | None,
        now: datetime,
        error: str | None = None,
    ) -> None:
        known = work.query.known
        current = outcome.payment_method if outcome else None
        session.add(
            CardUpdaterRequest(
                case_id=work.case_id,
                action_id=action.id,
                customer_id=work.query.customer_id,
                payment_method_id=known.payment_method_id,
                fingerprint=known.fingerprint,
                provider=self.provider.name,
                reason=work.reason.value,
                asked_at=now,
                result=str(outcome.result) if outcome else "error",
                new_payment_method_id=so.read_payment_method(current).id if current else None,
                changes=outcome.changes if outcome else {"error": error},
            )
        )

    def postpone(
        self,
        session: Session,
        action: ScheduledAction,
        work: CheckWork,
        exc: Exception,
        now: datetime,
    ) -> Finish | Reschedule:
        """The provider was unreachable: the call is a row all the same; ask again later."""
        self._row(session, action, work, None, now, error=str(exc)[:200])
        if action.attempts >= MAX_TRIES:
            return Finish(ActionStatus.FAILED, f"failed: provider unavailable: {exc}")
        return Reschedule(now + backoff(action.attempts, timedelta(minutes=30)), str(exc))

    def abandon(
        self, session: Session, action: ScheduledAction, now: datetime
    ) -> Finish | Reschedule:
        return Finish(ActionStatus.FAILED, "failed: its workers kept dying")
