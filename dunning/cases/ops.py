"""What billing ops can do to a case, and how they read it. The HTTP API and the CLI
both call these functions; every change is written to the audit log."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from dunning.admin.actors import Actor
from dunning.admin.audit import record_audit
from dunning.cases import planner
from dunning.cases import service as cases
from dunning.cases.models import CaseDecision, CaseState, DunningCase
from dunning.cases.payloads import ChargePayload, write_off_key
from dunning.events.models import ProcessorEvent
from dunning.ledger.models import ChargeAttempt, Customer
from dunning.notify.models import Notification
from dunning.policy.records import DecisionKind
from dunning.scheduler.models import ActionKind, ScheduledAction
from dunning.scheduler.schedule import cancel_case_actions, upsert_action

_NOW_WINDOW = timedelta(minutes=5)


class CaseActionRefused(Exception):
    """The action is not possible for this case now; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def _open_case(session: Session, case_id: int) -> DunningCase:
    case = session.execute(
        select(DunningCase).where(DunningCase.id == case_id).with_for_update()
    ).scalar_one_or_none()
    if case is None:
        raise CaseActionRefused(f"no case {case_id}", status=404)
    if case.state != CaseState.OPEN:
        raise CaseActionRefused(f"case {case_id} is {case.state}")
    return case


def retry_now(session: Session, case_id: int, actor: Actor | str, now: datetime) -> str:
    """Schedule a retry for now, outside the policy's timing but never outside the
    card networks' rules (the engine decides, with ``retry_now``); returns the action's
    dedupe key."""
    case = _open_case(session, case_id)
    if case.paused:
        raise CaseActionRefused(f"case {case_id} is paused: resume it first")
    decision = planner.decide_for(session, case, now, retry_now=True)
    if decision is None:
        raise CaseActionRefused("the case has no failed attempt to retry")
    if decision.kind != DecisionKind.RETRY or decision.at is None:
        raise CaseActionRefused(f"no retry now: {decision.reason}")
    if decision.at > now + _NOW_WINDOW:
        raise CaseActionRefused(
            f"the card network rules allow the next retry at {decision.at:%Y-%m-%d %H:%M} UTC: "
            f"{decision.reason}"
        )
    key = planner.schedule(session, case, decision, now, retry_now=True)
    planner.record(session, case, decision, now, now)
    _audit(session, actor, "case.retry_now", case, {"action": key})
    return key


def pause(session: Session, case_id: int, actor: Actor | str) -> None:
    """Stop all retries, emails and end actions of the case until it is resumed."""
    case = _open_case(session, case_id)
    if case.paused:
        raise CaseActionRefused(f"case {case_id} is already paused")
    case.paused = True
    cancel_case_actions(session, case.id)
    _audit(session, actor, "case.pause", case, {})


def resume(session: Session, case_id: int, actor: Actor | str, now: datetime) -> None:
    """Let the policy plan the case again: retries, the end action and the emails still
    to come (of the steps whose day passed during the pause, the latest goes out once,
    at the customer's next allowed hour; see ``notify.sequence.plan_case_emails``)."""
    case = _open_case(session, case_id)
    if not case.paused:
        raise CaseActionRefused(f"case {case_id} is not paused")
    case.paused = False
    cases.replan(session, case, now)
    _audit(session, actor, "case.resume", case, {})


def write_off(session: Session, case_id: int, actor: Actor | str, now: datetime) -> None:
    """Give up on the invoice now: the invoice is marked uncollectible by the end-action
    step the workers perform (the policy's own end action is skipped)."""
    case = _open_case(session, case_id)
    key = write_off_key(case.id)
    if session.scalar(select(ScheduledAction.id).where(ScheduledAction.dedupe_key == key)):
        raise CaseActionRefused(f"case {case_id} is already being written off")
    case.paused = False
    cancel_case_actions(session, case.id)
    upsert_action(
        session,
        key=key,
        kind=ActionKind.END_ACTION,
        due=now,
        payload=ChargePayload(attempt_number=0, end_action="mark_uncollectible").as_json(),
        case_id=case.id,
        revive_any_canceled=False,
    )
    session.add(
        CaseDecision(
            case_id=case.id,
            decided_at=now,
            kind=DecisionKind.GIVE_UP.value,
            due_at=now,
            attempt_number=0,
            decline_class=None,
            reason="written off by ops",
            policy_id=case.policy_id,
        )
    )
    _audit(session, actor, "case.write_off", case, {})


def _audit(
    session: Session, actor: Actor | str, action: str, case: DunningCase, details: dict[str, Any]
) -> None:
    record_audit(session, actor, action, "case", str(case.id), details)


def case_query(
    *,
    state: str | None = None,
    customer: str | None = None,
    decline_class: str | None = None,
    opened_from: datetime | None = None,
    opened_to: datetime | None = None,
) -> Select[DunningCase]:
    """Cases matching the filters ops use, newest first. ``customer`` is the processor's
    customer id, or the customer's email address or name (any case)."""
    stmt = select(DunningCase).order_by(DunningCase.opened_at.desc(), DunningCase.id.desc())
    if state:
        stmt = stmt.where(DunningCase.state == state)
    if customer:
        named = select(Customer.id).where(
            or_(
                func.lower(Customer.email) == customer.lower(),
                func.lower(Customer.name) == customer.lower(),
            )
        )
        stmt = stmt.where(
            or_(DunningCase.customer_id == customer, DunningCase.customer_id.in_(named))
        )
    if opened_from:
        stmt = stmt.where(DunningCase.opened_at >= opened_from)
    if opened_to:
        stmt = stmt.where(DunningCase.opened_at < opened_to)
    if decline_class:
        stmt = stmt.where(DunningCase.decline_class == decline_class)
    return stmt


def timeline(session: Session, case: DunningCase) -> dict[str, list[Any]]:
    """Everything that happened to a case: events, attempts, decisions, actions, emails."""
    attempts = session.scalars(
        select(ChargeAttempt)
        .where(ChargeAttempt.invoice_id == case.invoice_id)
        .order_by(ChargeAttempt.attempted_at)
    ).all()
    object_ids = [case.invoice_id, *(a.charge_id for a in attempts if a.charge_id)]
    events = session.scalars(
        select(ProcessorEvent)
        .where(ProcessorEvent.object_id.in_(object_ids))
        .order_by(ProcessorEvent.processor_created, ProcessorEvent.id)
        .limit(500)
    ).all()
    decisions = session.scalars(
        select(CaseDecision).where(CaseDecision.case_id == case.id).order_by(CaseDecision.id)
    ).all()
    actions = session.scalars(
        select(ScheduledAction)
        .where(ScheduledAction.case_id == case.id)
        .order_by(ScheduledAction.id)
    ).all()
    notifications = session.scalars(
        select(Notification).where(Notification.case_id == case.id).order_by(Notification.id)
    ).all()
    return {
        "events": list(events),
        "attempts": list(attempts),
        "decisions": list(decisions),
        "actions": list(actions),
        "notifications": list(notifications),
    }
