"""A case page's content: the customer, invoice and card, the whole timeline in one
list, what happens next, and what each ops button would do now.

The timeline merges what ``cases.ops.timeline`` returns (events, attempts, decisions,
actions, emails) with the customer's own steps (link opens, card updates) and the
audit log's entries about the case, in time order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dunning.admin.models import AuditEntry
from dunning.cases import authentication, ops, planner
from dunning.cases.models import CaseEvent, CaseState, DunningCase
from dunning.console.pages import money, when
from dunning.db import session_factory
from dunning.ledger.models import Customer, Invoice, PaymentMethod, Subscription
from dunning.ledger.queries import charged_card
from dunning.policy.errors import PolicyNotFound
from dunning.policy.records import DecisionKind
from dunning.policy.versions import get_policy_by_id
from dunning.scheduler.models import ActionStatus, ScheduledAction

_CHARGE_OUTCOME_TONE = {"succeeded": "good", "failed": "bad"}
_ACTION_TONE = {"done": "good", "failed": "bad", "canceled": "muted", "pending": "next"}
_EMAIL_TONE = {"sent": "good", "failed": "bad", "skipped": "muted", "unknown": "bad"}


@dataclass(frozen=True)
class Entry:
    """One line of the timeline."""

    at: datetime
    source: str  # webhook, charge, decision, action, email, customer, ops
    title: str
    detail: str = ""
    tone: str = "info"  # good, bad, muted, next, info


@dataclass(frozen=True)
class Verdict:
    """Whether an ops action is possible now, and what it would do, in words."""

    allowed: bool
    message: str


@dataclass
class CaseView:
    case: DunningCase
    customer: Customer | None
    subscription: Subscription | None
    invoice: Invoice | None
    card: PaymentMethod | None
    policy_label: str
    entries: list[Entry]
    upcoming: list[ScheduledAction]
    last_reason: str | None
    verdicts: dict[str, Verdict] = field(default_factory=dict)


def _codes(attempt: Any) -> str:
    names = (
        "failure_code",
        "decline_code",
        "network_decline_code",
        "advice_code",
        "network_advice_code",
    )
    parts = [f"{n.replace('_', ' ')} {getattr(attempt, n)}" for n in names if getattr(attempt, n)]
    if attempt.card_last4:
        parts.append(f"{attempt.card_brand or 'card'} •••• {attempt.card_last4}")
    parts.append(f"by {attempt.triggered_by}")
    return " · ".join(parts)


def _ops_entries(session: Session, case: DunningCase) -> list[Entry]:
    rows = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.target_type == "case", AuditEntry.target_id == str(case.id))
        .order_by(AuditEntry.id)
    ).all()
    return [
        Entry(row.at, "ops", f"{row.action} by {row.actor}", _details(row.details), "info")
        for row in rows
    ]


def _details(details: dict[str, Any]) -> str:
    return " · ".join(f"{k} {v}" for k, v in details.items() if v not in (None, "", {}))


def _customer_entries(session: Session, case: DunningCase) -> list[Entry]:
    rows = session.scalars(
        select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.at, CaseEvent.id)
    ).all()
    return [
        Entry(row.at, "customer", row.kind.replace("_", " "), _details(row.details), "info")
        for row in rows
    ]


def timeline(session: Session, case: DunningCase) -> list[Entry]:
    """Every step of the case, oldest first."""
    found = ops.timeline(session, case)
    entries: list[Entry] = []
    for e in found["events"]:
        tone = "bad" if e.status == "failed" else "muted" if e.status == "ignored" else "info"
        detail = f"{e.event_id} · {e.source} · {e.status}" + (f" · {e.error}" if e.error else "")
        entries.append(Entry(e.received_at, "webhook", e.type, detail, tone))
    for a in found["attempts"]:
        number = f" {a.attempt_number}" if a.attempt_number else ""
        title = f"charge attempt{number}: {a.outcome}, {money(a.amount, a.currency)}"
        tone = _CHARGE_OUTCOME_TONE.get(a.outcome, "info")
        entries.append(Entry(a.attempted_at, "charge", title, _codes(a), tone))
    for d in found["decisions"]:
        due = f" for {when(d.due_at)}" if d.due_at and d.kind == DecisionKind.RETRY else ""
        title = f"decision: {d.kind.replace('_', ' ')}{due}"
        detail = d.reason + (f" · class {d.decline_class}" if d.decline_class else "")
        entries.append(Entry(d.decided_at, "decision", title, detail, "info"))
    for s in found["actions"]:
        title = f"{s.kind.replace('_', ' ')} due {when(s.due_at)}: {s.status}"
        detail = " · ".join(p for p in (s.dedupe_key, s.result or "") if p)
        entries.append(
            Entry(
                s.completed_at or s.created_at,
                "action",
                title,
                detail,
                _ACTION_TONE.get(s.status, "info"),
            )
        )
    for n in found["notifications"]:
        title = f"{n.channel} {n.template} to {n.recipient or '?'}: {n.status}"
        detail = " · ".join(p for p in (n.locale or "", n.provider or "", n.error or "") if p)
        entries.append(
            Entry(
                n.sent_at or n.created_at, "email", title, detail, _EMAIL_TONE.get(n.status, "info")
            )
        )
    if authentication.is_waiting(case) and case.awaiting_action_since is not None:
        detail = "3-D Secure: no off-session retry until they confirm the payment on their page"
        entries.append(
            Entry(case.awaiting_action_since, "customer", authentication.WAITING, detail, "next")
        )
    entries += _customer_entries(session, case) + _ops_entries(session, case)
    return sorted(entries, key=lambda e: e.at)


def _policy_label(session: Session, case: DunningCase) -> str:
    if case.policy_id is None:
        return "—"
    try:
        return get_policy_by_id(session, case.policy_id).label
    except PolicyNotFound:
        return f"policy {case.policy_id}"


def build(session: Session, case: DunningCase) -> CaseView:
    """What the case page shows (the verdicts are added by ``verdicts``)."""
    upcoming = session.scalars(
        select(ScheduledAction)
        .where(ScheduledAction.case_id == case.id, ScheduledAction.status == ActionStatus.PENDING)
        .order_by(ScheduledAction.due_at)
    ).all()
    entries = timeline(session, case)
    reasons = [e.detail for e in entries if e.source == "decision"]
    return CaseView(
        case=case,
        customer=session.get(Customer, case.customer_id) if case.customer_id else None,
        subscription=session.get(Subscription, case.subscription_id)
        if case.subscription_id
        else None,
        invoice=session.get(Invoice, case.invoice_id),
        card=charged_card(session, case.subscription_id, case.customer_id),
        policy_label=_policy_label(session, case),
        entries=entries,
        upcoming=list(upcoming),
        last_reason=reasons[-1] if reasons else None,
    )


def _retry_now(case_id: int, now: datetime) -> Verdict:
    """Ask ``cases.ops.retry_now`` itself, in a transaction rolled back: its answer is
    the one the button would get, with the engine's reason when it would retry."""
    session = session_factory()()
    try:
        case = session.get(DunningCase, case_id)
        decision = planner.decide_for(session, case, now, retry_now=True) if case else None
        ops.retry_now(session, case_id, "console:dry-run", now)
        reason = f" The engine: {decision.reason}." if decision else ""
        return Verdict(
            True,
            "The card network rules allow a retry now: the card is charged within a minute, "
            f"outside the policy's timing.{reason}",
        )
    except ops.CaseActionRefused as exc:
        return Verdict(False, f"Not possible now: {exc}.")
    finally:
        session.rollback()
        session.close()


def verdicts(case: DunningCase, now: datetime | None = None) -> dict[str, Verdict]:
    """What each button would do now (none for a closed case)."""
    now = now or datetime.now(UTC)
    if case.state != CaseState.OPEN:
        return {}
    out: dict[str, Verdict] = {}
    if case.paused:
        out["resume"] = Verdict(
            True,
            "The policy plans the case again from now: its next retry, its end and the emails "
            "still to come (of those whose day passed while paused, the latest goes once).",
        )
    else:
        out["retry-now"] = _retry_now(case.id, now)
        out["pause"] = Verdict(
            True,
            "Every pending retry, email and the end action are canceled until you resume; "
            "the customer can still pay through their link.",
        )
    out["write-off"] = Verdict(
        True,
        f"The invoice ({money(case.amount, case.currency)}) is marked uncollectible now and "
        "the case closes; the policy's own end action is skipped. This cannot be undone here.",
    )
    return out
