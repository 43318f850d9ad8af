"""``/api/cases``: ops read cases with their full timeline and act on them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict

from dunning.admin.auth import OpsActor, ReaderActor
from dunning.cases import ops
from dunning.cases.models import CaseState, DunningCase
from dunning.db import session_scope
from dunning.http import DbText, Instant, Offset, RowId
from dunning.policy.declines import DeclineClass

router = APIRouter(prefix="/api/cases", tags=["cases"])


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class CaseOut(_Out):
    id: int
    invoice_id: str
    customer_id: str | None
    subscription_id: str | None
    state: str
    paused: bool
    amount: int | None
    currency: str | None
    policy_id: int | None
    policy_version: int | None
    opened_at: datetime
    closed_at: datetime | None
    recovered_amount: int | None
    recovered_by: str | None
    end_action: str | None


class AttemptOut(_Out):
    attempt_key: str
    attempt_number: int | None
    attempted_at: datetime
    outcome: str
    amount: int | None
    currency: str | None
    failure_code: str | None
    decline_code: str | None
    network_decline_code: str | None
    advice_code: str | None
    network_advice_code: str | None
    card_brand: str | None
    card_last4: str | None
    triggered_by: str


class DecisionOut(_Out):
    decided_at: datetime
    kind: str
    due_at: datetime | None
    attempt_number: int
    decline_class: str | None
    reason: str
    policy_id: int | None


class ActionOut(_Out):
    id: int
    kind: str
    due_at: datetime
    status: str
    dedupe_key: str
    attempts: int
    completed_at: datetime | None
    result: str | None


class EventOut(_Out):
    event_id: str
    type: str
    source: str
    received_at: datetime
    status: str
    error: str | None


class NotificationOut(_Out):
    id: int
    dedupe_key: str
    kind: str
    template: str
    locale: str | None
    recipient: str | None
    status: str
    provider: str | None
    provider_id: str | None
    attempts: int
    error: str | None
    created_at: datetime
    sent_at: datetime | None


class CaseDetail(CaseOut):
    events: list[EventOut]
    attempts: list[AttemptOut]
    decisions: list[DecisionOut]
    actions: list[ActionOut]
    notifications: list[NotificationOut]


class ActionAccepted(BaseModel):
    case_id: int
    done: str


@router.get("", response_model=list[CaseOut])
def list_cases(
    actor: ReaderActor,
    state: CaseState | None = None,
    customer: DbText | None = None,
    decline_class: DeclineClass | None = None,
    opened_from: Instant | None = None,
    opened_to: Instant | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: Offset = 0,
) -> list[DunningCase]:
    """Cases, newest first, filtered by state, customer, decline class and opening date."""
    stmt = ops.case_query(
        state=state,
        customer=customer,
        decline_class=decline_class,
        opened_from=opened_from,
        opened_to=opened_to,
    )
    with session_scope() as session:
        return list(session.scalars(stmt.limit(limit).offset(offset)))


@router.get("/{case_id}", response_model=CaseDetail)
def show_case(case_id: RowId, actor: ReaderActor) -> dict[str, Any]:
    """One case with its events, attempts, decisions (with reasons) and actions."""
    with session_scope() as session:
        case = session.get(DunningCase, case_id)
        if case is None:
            raise HTTPException(404, f"no case {case_id}")
        detail: dict[str, Any] = CaseOut.model_validate(case).model_dump()
        for name, items in ops.timeline(session, case).items():
            detail[name] = items
        return CaseDetail.model_validate(detail).model_dump()


def _act(case_id: int, done: str, change: Any) -> ActionAccepted:
    try:
        with session_scope() as session:
            change(session)
    except ops.CaseActionRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return ActionAccepted(case_id=case_id, done=done)


@router.post("/{case_id}/retry-now", response_model=ActionAccepted)
def retry_now(case_id: RowId, actor: OpsActor) -> ActionAccepted:
    """Retry within minutes, if the card networks' rules allow it (409 otherwise)."""
    now = datetime.now(UTC)
    return _act(case_id, "retry scheduled", lambda s: ops.retry_now(s, case_id, actor, now))


@router.post("/{case_id}/pause", response_model=ActionAccepted)
def pause(case_id: RowId, actor: OpsActor) -> ActionAccepted:
    return _act(case_id, "paused", lambda s: ops.pause(s, case_id, actor))


@router.post("/{case_id}/resume", response_model=ActionAccepted)
def resume(case_id: RowId, actor: OpsActor) -> ActionAccepted:
    now = datetime.now(UTC)
    return _act(case_id, "resumed", lambda s: ops.resume(s, case_id, actor, now))


@router.post("/{case_id}/write-off", response_model=ActionAccepted)
def write_off(case_id: RowId, actor: OpsActor) -> ActionAccepted:
    """Mark the invoice uncollectible now and close the case."""
    now = datetime.now(UTC)
    return _act(case_id, "written off", lambda s: ops.write_off(s, case_id, actor, now))
