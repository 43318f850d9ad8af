"""An email template as a customer would see it: with sample data, or with a real case's.

A case's data comes from ``notify.compose``, which reads the ledger as the worker does
when it sends (customer name, plan, amount, card, dates, locale); what a template needs
beyond a dunning email's context (a renewal date, a card's expiry, the end of the case)
is read from the same case. The link is a placeholder: a real one is signed per email.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dunning.cases.models import DunningCase
from dunning.formatting import resolve_locale
from dunning.ledger.models import Subscription
from dunning.ledger.queries import charged_card
from dunning.notify.compose import END_ACTION_WORDING, NotNeeded, Undeliverable, compose
from dunning.notify.render import (
    RenderedEmail,
    render_email,
    sample_context,
)
from dunning.notify.sequence import DUNNING
from dunning.policy import store
from dunning.scheduler.models import ActionKind, ActionStatus, ScheduledAction
from dunning.settings import Settings


@dataclass(frozen=True)
class Shown:
    """A rendered template and whose data it shows."""

    template: str
    asked_locale: str | None
    email: RenderedEmail
    data: str  # "sample data" or "case #12 (Grace Hopper)"
    note: str | None = None  # why a case's data could not be used


def _end_of_case(session: Session, case: DunningCase) -> datetime:
    """When the case ends: its pending end action, else the policy's last day."""
    due = session.scalar(
        select(ScheduledAction.due_at).where(
            ScheduledAction.case_id == case.id,
            ScheduledAction.kind == ActionKind.END_ACTION,
            ScheduledAction.status == ActionStatus.PENDING,
        )
    )
    if due is not None:
        return due
    days = store.policy_by_id(session, case.policy_id).limits.max_days if case.policy_id else 28
    return case.opened_at + timedelta(days=days)


def _case_context(
    session: Session, case: DunningCase, template: str, settings: Settings, now: datetime
) -> tuple[dict[str, Any], str | None]:
    """The template's variables from the case (NotNeeded/Undeliverable when it cannot)."""
    composed = compose(
        session,
        {"kind": DUNNING, "case_id": case.id, "template": template, "step": 0},
        now,
        settings,
    )
    context = sample_context(template)
    context.update({k: v for k, v in composed.context.items() if k in context})
    context["update_url"] = f"{settings.public_base}/pay/preview-only"
    if "end_date" in context:
        context["end_date"] = case.closed_at or _end_of_case(session, case)
    if "end_action" in context and case.policy_id:
        end = store.policy_by_id(session, case.policy_id).end_action.value
        context["end_action"] = END_ACTION_WORDING.get(end, "mark_unpaid")
    sub = session.get(Subscription, case.subscription_id) if case.subscription_id else None
    if "renewal_date" in context and sub is not None and sub.current_period_end:
        context["renewal_date"] = sub.current_period_end
        zone_days = (sub.current_period_end - now).days
        context["days_before"] = max(zone_days, 1)
    card = charged_card(session, case.subscription_id, case.customer_id)
    if "card_exp_month" in context and card is not None and card.exp_month and card.exp_year:
        context["card_exp_month"], context["card_exp_year"] = card.exp_month, card.exp_year
    return context, composed.locale


def show(
    session: Session | None,
    template: str,
    locale: str | None,
    settings: Settings,
    case_id: int | None = None,
) -> Shown:
    """``template`` rendered in ``locale`` (None: the case customer's, else English)."""
    context: dict[str, Any] = sample_context(template)
    data, note, customer_locale = "sample data", None, None
    if case_id is not None and session is not None:
        case = session.get(DunningCase, case_id)
        if case is None:
            note = f"There is no case {case_id}: showing sample data."
        else:
            try:
                context, customer_locale = _case_context(
                    session, case, template, settings, datetime.now(UTC)
                )
                data = f"case #{case.id}"
            except (NotNeeded, Undeliverable) as exc:
                note = f"Case #{case_id} gets no email now ({exc}): showing sample data."
    chosen = locale or customer_locale
    email = render_email(template, chosen, context, brand=settings.branding())
    return Shown(template=template, asked_locale=chosen, email=email, data=data, note=note)


def locale_label(code: str) -> str:
    """``es`` -> ``es (Spanish)``, for the locale picker."""
    name = resolve_locale(code).format_locale.get_display_name("en") or code
    return f"{code} ({name})"
