"""Turn the engine's decision for a case into scheduled actions and a timeline entry.

The engine is pure (dunning/policy/engine.py); this module gathers its inputs from
the ledger, records what it decided and why, and writes the action rows whose dedupe
keys make each retry and each end action happen once per case. It returns the
decision; its caller (``cases.service``) plans the emails that go with it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from dunning.cases.models import CaseDecision, CaseState, DunningCase
from dunning.cases.payloads import ChargePayload, end_key, retry_key
from dunning.db import among
from dunning.db import table as core_table
from dunning.ledger.models import ChargeAttempt, Invoice, TriggeredBy
from dunning.ledger.queries import (
    card_attempts,
    cards_on_file,
    charged_card,
    customer_time_zone,
    invoice_attempts,
    read_once,
    remember,
)
from dunning.policy import store
from dunning.policy.activation import current_activation
from dunning.policy.engine import classify_attempts, decide
from dunning.policy.models import Policy
from dunning.policy.records import Attempt, Card, Decision, DecisionKind
from dunning.scheduler.models import ActionKind
from dunning.scheduler.schedule import cancel_case_actions, upsert_action

# What a new decision replaces; the case's emails follow their own plan (notify.sequence).
_CHARGE_KINDS = (ActionKind.RETRY_CHARGE, ActionKind.END_ACTION)


def _attempts(session: Session, case: DunningCase) -> list[Attempt]:
    return [_attempt(row, case) for row in invoice_attempts(session, case.invoice_id)]


def _attempt(row: ChargeAttempt, case: DunningCase) -> Attempt:
    return Attempt(
        at=row.attempted_at,
        amount=row.amount or case.amount or 0,
        currency=row.currency or case.currency or "usd",
        succeeded=row.outcome == "succeeded",
        decline_code=row.decline_code,
        failure_code=row.failure_code,
        network_decline_code=row.network_decline_code,
        advice_code=row.advice_code,
        network_advice_code=row.network_advice_code,
        card_brand=row.card_brand,
        card_fingerprint=row.card_fingerprint,
        merchant_initiated=row.triggered_by != TriggeredBy.CUSTOMER,
    )


# How far back a card's declines count (the networks' windows are 30 days and a month).
CARD_HISTORY = timedelta(days=31)


def _card_history(
    session: Session, case: DunningCase, fingerprint: str | None, now: datetime
) -> list[Attempt]:
    """Other recent declines on the same card: the networks count per card, not per case."""
    if not fingerprint:
        return []
    rows = card_attempts(session, fingerprint, now - CARD_HISTORY)
    # Charges not yet linked to an invoice may be this case's own: they wait for the link.
    others = [row for row in rows if row.invoice_id not in (None, case.invoice_id)]
    return [_attempt(row, case) for row in others]


def decline_class(session: Session, case: DunningCase) -> str | None:
    """The class of the case's last failed attempt (repeats escalate), from the ledger."""
    classes = classify_attempts(_attempts(session, case))
    return classes[-1].value if classes else None


def case_policy(session: Session, case: DunningCase) -> Policy:
    """The policy version the case follows (chosen, by the split, when it opens)."""
    if case.policy_id is None:
        activation = read_once(session, ("policy activation",), lambda: current_activation(session))
        policy_id, policy = store.policy_for_customer(
            session, case.customer_id or case.invoice_id, activation
        )
        case.policy_id, case.policy_version = policy_id, policy.version
        return policy
    return store.policy_by_id(session, case.policy_id)


@dataclass(frozen=True)
class EngineInputs:
    """Everything the pure engine needs about one case, read from the ledger."""

    policy: Policy
    history: list[Attempt]
    time_zone: str
    card_brand: str | None
    card_history: list[Attempt]
    card_updated_at: datetime | None
    processor_retry_at: datetime | None
    cards: list[Card]  # usable cards on file, the charged one first (the policy's cascade)


def inputs_for(session: Session, case: DunningCase, now: datetime) -> EngineInputs | None:
    """The engine's inputs for a case whose last attempt failed; None otherwise (read
    once per ledger state: the planner and the card updater both ask)."""
    return read_once(session, ("engine inputs", case.id, now), lambda: _inputs(session, case, now))


def _inputs(session: Session, case: DunningCase, now: datetime) -> EngineInputs | None:
    history = _attempts(session, case)
    if not history or history[-1].succeeded:
        return None
    card = charged_card(session, case.subscription_id, case.customer_id)
    last_failure = history[-1].at
    card_updated_at = None
    if card is not None:
        used = {a.card_fingerprint for a in history if a.card_fingerprint}
        if card.updated_by_network_at and card.updated_by_network_at > last_failure:
            card_updated_at = card.updated_by_network_at
        elif card.fingerprint and used and card.fingerprint not in used:
            card_updated_at = max(card.updated_at, last_failure)
    invoice = session.get(Invoice, case.invoice_id)
    policy = case_policy(session, case)
    on_file = (
        cards_on_file(session, case.subscription_id, case.customer_id)
        if policy.classes.cascades()
        else []
    )
    return EngineInputs(
        policy=policy,
        history=history,
        time_zone=customer_time_zone(session, case.customer_id) or "UTC",
        card_brand=(card.brand if card else None) or history[-1].card_brand,
        card_history=_card_history(session, case, card.fingerprint if card else None, now),
        card_updated_at=card_updated_at,
        processor_retry_at=invoice.next_payment_attempt if invoice else None,
        cards=[
            Card(
                pm.id,
                pm.fingerprint,
                pm.brand,
                pm.last4,
                pm.exp_month,
                pm.exp_year,
                tuple(_card_history(session, case, pm.fingerprint, now)),
            )
            for pm in on_file
        ],
    )


def decide_for(
    session: Session, case: DunningCase, now: datetime, *, retry_now: bool = False
) -> Decision | None:
    """The engine's decision for an open case, from the ledger as it stands
    (``retry_now``: ops asked for a retry now; the engine still applies the network rules)."""
    given = inputs_for(session, case, now)
    if given is None:
        return None
    return decide(
        given.policy,
        given.history,
        now=now,
        time_zone=given.time_zone,
        card_brand=given.card_brand,
        card_history=given.card_history,
        card_updated_at=given.card_updated_at,
        processor_retry_at=given.processor_retry_at,
        retry_now=retry_now,
        awaiting_action=case.awaiting_action_since is not None,
        cards=given.cards,
    )


def plan(session: Session, case: DunningCase, now: datetime) -> Decision | None:
    """Decide what comes next for the case and schedule it (or cancel what it no longer needs)."""
    if case.state != CaseState.OPEN or case.paused:
        cancel_case_actions(session, case.id)
        return None
    decision = decide_for(session, case, now)
    if decision is None:
        return None
    due = decision.at if decision.kind != DecisionKind.GIVE_UP and decision.at else now
    schedule(session, case, decision, due)
    record(session, case, decision, due, now)
    return decision


def schedule(
    session: Session,
    case: DunningCase,
    decision: Decision,
    due: datetime,
    *,
    retry_now: bool = False,
) -> str:
    """Write the action a decision calls for, replacing the case's other pending ones."""
    if decision.kind == DecisionKind.RETRY:
        key, kind = retry_key(case.id, decision.attempt_number), ActionKind.RETRY_CHARGE
    else:
        key, kind = end_key(case.id), ActionKind.END_ACTION
    payload = ChargePayload(
        attempt_number=decision.attempt_number,
        end_action=(decision.end_action or case_policy(session, case).end_action).value,
        retry_now=retry_now,
        payment_method=decision.card.id if decision.card else None,
        pause_behavior=case_policy(session, case).pause_behavior.value,
    )
    cancel_case_actions(session, case.id, keep=key, kinds=_CHARGE_KINDS)
    upsert_action(
        session,
        key=key,
        kind=kind,
        due=due,
        payload=payload.as_json(),
        case_id=case.id,
        revive_any_canceled=True,
    )
    return key


def record(
    session: Session, case: DunningCase, decision: Decision, due: datetime, now: datetime
) -> None:
    """Add the decision to the case's timeline unless it repeats the last one (inside
    ``recorded_together``, the entry is written with the batch's others at its end)."""
    last = read_once(
        session,
        ("last decision", case.id),
        lambda: _entry(
            session.scalars(
                select(CaseDecision)
                .where(CaseDecision.case_id == case.id)
                .order_by(CaseDecision.id.desc())
                .limit(1)
            ).first()
        ),
    )
    row = {
        "case_id": case.id,
        "decided_at": now,
        "kind": decision.kind.value,
        "due_at": due,
        "attempt_number": decision.attempt_number,
        "decline_class": decision.decline_class.value,
        "reason": decision.reason,
        "policy_id": case.policy_id,
    }
    if last == _entry(row):
        return
    held: list[dict[str, object]] | None = session.info.get(_HELD)
    if held is None:
        session.execute(insert(core_table(CaseDecision)), [row])
    else:
        held.append(row)
    remember(session, ("last decision", case.id), _entry(row))


_HELD = "decisions held"


@contextmanager
def recorded_together(session: Session) -> Iterator[None]:
    """Hold the timeline entries ``record`` adds and write them in one statement at the
    end: a batch's hundreds of entries as ORM objects cost a flush's bookkeeping each."""
    if _HELD in session.info:
        yield
        return
    held: list[dict[str, object]] = []
    session.info[_HELD] = held
    try:
        yield
        if held:
            session.execute(insert(core_table(CaseDecision)), held)
    finally:
        session.info.pop(_HELD, None)


Entry = tuple[str, datetime | None, int, str | None]


def _entry(row: CaseDecision | Mapping[str, Any] | None) -> Entry | None:
    """What makes a timeline entry a repeat of the last: kind, due, attempt and class."""
    if row is None:
        return None
    if isinstance(row, CaseDecision):
        return (row.kind, row.due_at, row.attempt_number, row.decline_class)
    return (row["kind"], row["due_at"], row["attempt_number"], row["decline_class"])


def prefetch_decisions(session: Session, case_ids: list[int]) -> None:
    """Read the last timeline entry of a batch's cases in one query (``reads_once``)."""
    last = {
        row.case_id: row
        for row in session.scalars(
            select(CaseDecision)
            .where(among(CaseDecision.case_id, case_ids))
            .order_by(CaseDecision.case_id, CaseDecision.id.desc())
            .ext(distinct_on(CaseDecision.case_id))
        )
    }
    for case_id in case_ids:
        remember(session, ("last decision", case_id), _entry(last.get(case_id)))
