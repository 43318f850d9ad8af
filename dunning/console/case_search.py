"""The console's case queue: search, filters, sort, paging and counts per state.

Built on ``cases.ops.case_query`` (state, decline class, opening dates), with what a
queue needs on top: a search box that takes a customer's email or name (any part,
any case), a case number, or any Stripe id (customer, invoice, subscription, charge,
payment intent, payment method, event); paused or not; policy; an amount range in the
currency's own units.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, or_, select
from sqlalchemy.orm import Session

from dunning.cases import ops
from dunning.cases.models import CaseState, DunningCase
from dunning.events.models import ProcessorEvent
from dunning.formatting import THREE_DECIMAL_CURRENCIES, ZERO_DECIMAL_CURRENCIES
from dunning.ledger.models import ChargeAttempt, Customer, PaymentMethod
from dunning.policy.declines import DeclineClass
from dunning.scheduler.models import ActionStatus, ScheduledAction

PAGE_SIZE = 50
STATES: tuple[str, ...] = tuple(CaseState)
DECLINE_CLASSES: tuple[str, ...] = tuple(DeclineClass)
SORTS = {
    "newest": "newest first",
    "oldest": "oldest first",
    "amount_desc": "largest amount",
    "amount_asc": "smallest amount",
    "next_action": "next action soonest",
}
_CASE_NUMBER = re.compile(r"^#?(\d{1,18})$")


@dataclass(frozen=True)
class Filters:
    """What the queue's form asked for (already checked)."""

    q: str = ""
    state: str = ""
    paused: str = ""  # "", "yes", "no"
    decline_class: str = ""
    policy_id: int | None = None
    opened_from: date | None = None
    opened_to: date | None = None  # inclusive, as people read a date range
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    sort: str = "newest"
    page: int = 1
    problems: list[str] = field(default_factory=list)

    def query(self, **changes: Any) -> dict[str, str]:
        """The form's fields as URL parameters, with ``changes`` (for links)."""
        f = replace(self, **changes)
        values = {
            "q": f.q,
            "state": f.state,
            "paused": f.paused,
            "decline_class": f.decline_class,
            "policy": "" if f.policy_id is None else str(f.policy_id),
            "from": f.opened_from.isoformat() if f.opened_from else "",
            "to": f.opened_to.isoformat() if f.opened_to else "",
            "min": "" if f.amount_min is None else str(f.amount_min),
            "max": "" if f.amount_max is None else str(f.amount_max),
            "sort": "" if f.sort == "newest" else f.sort,
            "page": "" if f.page == 1 else str(f.page),
        }
        return {k: v for k, v in values.items() if v}


def _choice(
    value: str, allowed: tuple[str, ...] | dict[str, str], label: str, out: list[str]
) -> str:
    if value and value not in allowed:
        out.append(f"{label} {value!r} is not one of {', '.join(allowed)}")
        return ""
    return value


def _day(value: str, label: str, out: list[str]) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        out.append(f"{label} must be a date like 2026-03-01, not {value!r}")
        return None
    if not 1970 <= day.year < 3000:
        out.append(f"{label} must be between 1970 and 2999")
        return None
    return day


def _amount(value: str, label: str, out: list[str]) -> Decimal | None:
    if not value:
        return None
    try:
        amount = Decimal(value.replace(",", ""))
    except InvalidOperation:
        out.append(f"{label} must be a number like 49.00, not {value!r}")
        return None
    if not amount.is_finite() or not 0 <= amount < 10**12:
        out.append(f"{label} must be between 0 and 999,999,999,999")
        return None
    return amount


def parse(params: Mapping[str, str]) -> Filters:
    """Filters from the query string; what cannot be used is dropped and named."""
    out: list[str] = []
    policy: int | None = None
    if params.get("policy", "").strip():
        try:
            policy = int(params["policy"])
        except ValueError:
            out.append(f"policy must be a stored policy's id, not {params['policy']!r}")
    try:
        page = max(1, min(int(params.get("page") or 1), 10**6))
    except ValueError:
        page = 1
    return Filters(
        q=params.get("q", "").strip()[:200],
        state=_choice(params.get("state", ""), STATES, "state", out),
        paused=_choice(params.get("paused", ""), ("yes", "no"), "paused", out),
        decline_class=_choice(params.get("decline_class", ""), DECLINE_CLASSES, "class", out),
        policy_id=policy,
        opened_from=_day(params.get("from", "").strip(), "Opened from", out),
        opened_to=_day(params.get("to", "").strip(), "Opened to", out),
        amount_min=_amount(params.get("min", "").strip(), "Minimum amount", out),
        amount_max=_amount(params.get("max", "").strip(), "Maximum amount", out),
        sort=_choice(params.get("sort", ""), SORTS, "sort", out) or "newest",
        page=page,
        problems=out,
    )


def _like(text: str) -> str:
    return "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _search(q: str) -> ColumnElement[bool]:
    """Cases of a customer named, mailed or identified by ``q``, or about object ``q``."""
    like = _like(q)
    customers = select(Customer.id).where(
        or_(func.lower(Customer.email).like(like), func.lower(Customer.name).like(like))
    )
    clauses: list[ColumnElement[bool]] = [
        DunningCase.customer_id.in_(customers),
        DunningCase.customer_id == q,
        DunningCase.invoice_id == q,
        DunningCase.subscription_id == q,
    ]
    if number := _CASE_NUMBER.match(q):
        clauses.append(DunningCase.id == int(number.group(1)))
    if q.startswith(("ch_", "py_", "pi_", "pm_", "card_", "src_")):
        charged = select(ChargeAttempt.invoice_id).where(
            or_(
                ChargeAttempt.attempt_key == q,
                ChargeAttempt.charge_id == q,
                ChargeAttempt.payment_intent_id == q,
                ChargeAttempt.payment_method_id == q,
            )
        )
        clauses.append(DunningCase.invoice_id.in_(charged))
        owner = select(PaymentMethod.customer_id).where(PaymentMethod.id == q)
        clauses.append(DunningCase.customer_id.in_(owner))
    if q.startswith("evt_"):
        about = select(ProcessorEvent.object_id).where(ProcessorEvent.event_id == q)
        by_charge = select(ChargeAttempt.invoice_id).where(ChargeAttempt.charge_id.in_(about))
        clauses += [DunningCase.invoice_id.in_(about), DunningCase.invoice_id.in_(by_charge)]
    return or_(*clauses)


def _minor(amount: Decimal) -> ColumnElement[Any]:
    """``amount`` in the case's minor units (Stripe's exponents, as ``formatting``)."""
    code = func.upper(DunningCase.currency)
    scale = case(
        (code.in_(sorted(ZERO_DECIMAL_CURRENCIES)), 1),
        (code.in_(sorted(THREE_DECIMAL_CURRENCIES)), 1000),
        else_=100,
    )
    return scale * amount


def _instant(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _filtered(f: Filters, state: str | None) -> Select[Any]:
    stmt = ops.case_query(
        state=state or None,
        decline_class=f.decline_class or None,
        opened_from=_instant(f.opened_from) if f.opened_from else None,
        opened_to=_instant(f.opened_to + timedelta(days=1)) if f.opened_to else None,
    )
    if f.q:
        stmt = stmt.where(_search(f.q))
    if f.paused:
        stmt = stmt.where(DunningCase.paused.is_(f.paused == "yes"))
    if f.policy_id is not None:
        stmt = stmt.where(DunningCase.policy_id == f.policy_id)
    if f.amount_min is not None:
        stmt = stmt.where(DunningCase.amount >= _minor(f.amount_min))
    if f.amount_max is not None:
        stmt = stmt.where(DunningCase.amount <= _minor(f.amount_max))
    return stmt


@dataclass(frozen=True)
class Row:
    """One line of the queue."""

    case: DunningCase
    email: str | None
    name: str | None
    next_at: datetime | None


@dataclass(frozen=True)
class Result:
    rows: list[Row]
    counts: dict[str, int]  # per state, under every filter but the state
    total: int  # under every filter
    page: int
    pages: int


def _next_action() -> Any:
    return (
        select(func.min(ScheduledAction.due_at))
        .where(
            ScheduledAction.case_id == DunningCase.id,
            ScheduledAction.status == ActionStatus.PENDING,
        )
        .correlate(DunningCase)
        .scalar_subquery()
    )


def _sorted(stmt: Select[Any], sort: str, next_at: Any) -> Select[Any]:
    order: dict[str, tuple[Any, ...]] = {
        "newest": (DunningCase.opened_at.desc(), DunningCase.id.desc()),
        "oldest": (DunningCase.opened_at.asc(), DunningCase.id.asc()),
        "amount_desc": (DunningCase.amount.desc().nulls_last(), DunningCase.id.desc()),
        "amount_asc": (DunningCase.amount.asc().nulls_last(), DunningCase.id.desc()),
        "next_action": (next_at.asc().nulls_last(), DunningCase.id.desc()),
    }
    return stmt.order_by(None).order_by(*order[sort])


def search(session: Session, f: Filters) -> Result:
    """One page of the queue and the counts per state."""
    everything = _filtered(f, None).order_by(None).subquery()
    counts = {
        str(state): int(n)
        for state, n in session.execute(
            select(everything.c.state, func.count()).group_by(everything.c.state)
        )
    }
    total = counts.get(f.state, 0) if f.state else sum(counts.values())
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(f.page, pages)
    next_at = _next_action()
    stmt = (
        _filtered(f, f.state)
        .outerjoin(Customer, Customer.id == DunningCase.customer_id)
        .add_columns(Customer.email, Customer.name, next_at.label("next_at"))
    )
    stmt = _sorted(stmt, f.sort, next_at).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    rows = [Row(c, email, name, at) for c, email, name, at in session.execute(stmt)]
    return Result(rows=rows, counts=counts, total=total, page=page, pages=pages)
