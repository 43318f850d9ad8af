"""When the card updater is asked, and what its answers mean for a case's retries.

``cases.service.replan`` calls :func:`after_decision` once the planner decided. For a
retry it plans a ``check_card`` action (a dedupe-keyed row, never a Celery ETA):

- right after an ``expired_card`` decline (due at once, one per failed attempt);
- before every retry of a case whose last decline class is ``card_data``, or whose
  card expires before the retry (due ``LEAD`` before it, one per attempt number).

A card whose account the provider said is closed gets no blind retry: the case waits
for a new card (the customer's page or a processor update re-plans it at once) and
its end action is planned at the policy's deadline, as the engine's own wait does.
A retry made after a hit (the card changed) is the card updater's: see
:func:`follows_hit`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from dunning.card_updater.models import CardUpdaterRequest
from dunning.card_updater.provider import HITS, KnownCard, Result
from dunning.cases import planner
from dunning.cases.models import DunningCase
from dunning.db import among
from dunning.ledger.models import ChargeAttempt, PaymentMethod
from dunning.ledger.queries import charged_card, last_day_of_month, read_once, remember
from dunning.policy.declines import DeclineClass
from dunning.policy.records import Decision, DecisionKind
from dunning.scheduler.models import ActionKind
from dunning.scheduler.schedule import upsert_action

LEAD = timedelta(hours=6)  # ask this long before the retry, so a hit re-plans it in time


class Reason(StrEnum):
    """Why the updater was asked (``card_updater_requests.reason``)."""

    FETCH = "fetch"  # a case opened without a known card (``cases.card_fetch``)
    EXPIRED_DECLINE = "expired_card"  # right after an ``expired_card`` decline
    BEFORE_RETRY = "before_retry"  # a card_data case, or a card expiring before the retry
    EXPIRING = "expiring"  # no case: a default card expires before its next renewal


def check_key(case_id: int, reason: Reason, attempt_number: int) -> str:
    return f"case:{case_id}:card-updater:{reason}:{attempt_number}"


def _plan_check(
    session: Session, case: DunningCase, reason: Reason, number: int, due: datetime
) -> None:
    upsert_action(
        session,
        key=check_key(case.id, reason, number),
        kind=ActionKind.CHECK_CARD,
        due=due,
        payload={"reason": reason.value},
        case_id=case.id,
        revive_any_canceled=False,
    )


def expires_before(card: PaymentMethod | None, at: datetime) -> bool:
    """Whether the card can no longer be charged at ``at`` (it works to its month's end)."""
    if card is None or not card.exp_month or not card.exp_year:
        return False
    return last_day_of_month(card.exp_year, card.exp_month) < at.date()


def closed(session: Session, card: PaymentMethod | None) -> bool:
    """Whether the provider said the card's account is closed (and no network update
    of that card came since)."""
    if card is None:
        return False
    said = read_once(
        session, ("account closed", card.id), lambda: _closed_at(session, [card.id])[card.id]
    )
    return any(card.updated_by_network_at is None or at > card.updated_by_network_at for at in said)


def prefetch_closed(session: Session, card_ids: list[str]) -> None:
    """Read what the provider said of a batch's cards in one query (``reads_once``)."""
    for card_id, said in _closed_at(session, card_ids).items():
        remember(session, ("account closed", card_id), said)


def _closed_at(session: Session, card_ids: list[str]) -> dict[str, list[datetime]]:
    """When the provider said each card's account is closed."""
    said: dict[str, list[datetime]] = {card_id: [] for card_id in card_ids}
    rows = session.execute(
        select(CardUpdaterRequest.payment_method_id, CardUpdaterRequest.asked_at).where(
            among(CardUpdaterRequest.payment_method_id, card_ids),
            CardUpdaterRequest.result == Result.ACCOUNT_CLOSED,
        )
    )
    for card_id, at in rows:
        said[card_id or ""].append(at)
    return said


def after_decision(
    session: Session, case: DunningCase, decision: Decision, now: datetime
) -> Decision:
    """Plan the updater calls a retry needs; a closed account turns it into a wait.

    A retry on a backup card (``decision.card``) does not charge the card the updater
    knows about: nothing to check."""
    if decision.kind != DecisionKind.RETRY or decision.at is None or decision.card is not None:
        return decision
    given = planner.inputs_for(session, case, now)
    if given is None:
        return decision
    card = charged_card(session, case.subscription_id, case.customer_id)
    if closed(session, card):
        return _wait_for_card(session, case, decision, given.history[0].at, now)
    last = given.history[-1]
    if "expired_card" in (last.decline_code, last.failure_code):
        _plan_check(session, case, Reason.EXPIRED_DECLINE, decision.attempt_number - 1, now)
    if case.decline_class == DeclineClass.CARD_DATA or expires_before(card, decision.at):
        due = max(now, decision.at - LEAD)
        _plan_check(session, case, Reason.BEFORE_RETRY, decision.attempt_number, due)
    return decision


def _wait_for_card(
    session: Session, case: DunningCase, decision: Decision, first_failure: datetime, now: datetime
) -> Decision:
    deadline = first_failure + timedelta(days=planner.case_policy(session, case).limits.max_days)
    wait = Decision(
        DecisionKind.WAIT_FOR_CARD,
        deadline,
        "the card updater says this card's account is closed: no retries of it; "
        f"waiting for a new card, gives up at {deadline:%Y-%m-%d %H:%M} UTC",
        decision.decline_class,
        None,
        decision.attempt_number,
    )
    planner.schedule(session, case, wait, deadline)
    planner.record(session, case, wait, deadline, now)
    return wait


def known_card(session: Session, case: DunningCase) -> KnownCard:
    """The card the ledger says the case is charged with, else the last attempt's."""
    card = charged_card(session, case.subscription_id, case.customer_id)
    if card is not None:
        return KnownCard(card.id, card.fingerprint, card.last4, card.exp_month, card.exp_year)
    last = session.scalars(
        select(ChargeAttempt)
        .where(ChargeAttempt.invoice_id == case.invoice_id)
        .order_by(ChargeAttempt.attempted_at.desc())
        .limit(1)
    ).first()
    if last is None:
        return KnownCard()
    return KnownCard(last.payment_method_id, last.card_fingerprint, last.card_last4)


def follows_hit(session: Session, case: DunningCase) -> bool:
    """Whether a charge made now follows a card-updater hit: the updater changed the
    card after the case's last failed attempt. Such a charge is ``card_updater``'s."""
    last_failure = session.scalar(
        select(ChargeAttempt.attempted_at)
        .where(ChargeAttempt.invoice_id == case.invoice_id, ChargeAttempt.outcome == "failed")
        .order_by(ChargeAttempt.attempted_at.desc())
        .limit(1)
    )
    stmt = select(CardUpdaterRequest.id).where(
        CardUpdaterRequest.case_id == case.id, CardUpdaterRequest.result.in_(HITS)
    )
    if last_failure is not None:
        stmt = stmt.where(CardUpdaterRequest.asked_at > last_failure)
    return session.scalar(stmt.limit(1)) is not None
