"""What an email says and to whom: read from the ledger when the email is sent.

Reading at send time rather than at planning time means a step never tells stale
news: a case closed in the meantime, a renewal that moved or a card already
replaced are caught here (:class:`NotNeeded`), and the amount, card and dates are
the ledger's current ones. A customer we cannot write to is :class:`Undeliverable`.
A text (payload ``channel = "sms"``, case notices only) is addressed to the customer's
phone in E.164, or to no one (``recipient`` empty: delivery records it skipped).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from dunning.cases.models import CaseState, DunningCase
from dunning.db import among
from dunning.ledger.models import ChargeAttempt, Customer, Invoice, PaymentMethod, Subscription
from dunning.ledger.queries import charged_card_id, renewal_amount, renews
from dunning.notify.models import Notification, NotificationStatus
from dunning.notify.sequence import (
    CANCELED,
    CARD_EXPIRING,
    DUNNING,
    EMAIL,
    FINAL,
    RECOVERED,
    RENEWAL,
    SMS,
)
from dunning.notify.sms.optouts import normalize_phone
from dunning.scheduler.models import ScheduledAction
from dunning.settings import Settings
from dunning.timezones import customer_zone

# The policy's end actions, in the words the final notice knows (render.END_ACTIONS).
END_ACTION_WORDING = {
    "cancel_subscription": "cancel",
    "mark_uncollectible": "mark_unpaid",
    "leave_past_due": "mark_unpaid",
    "pause_subscription": "pause",
}
_NO_LAST4 = "••••"


class NotNeeded(Exception):
    """The email no longer applies (case closed, renewal moved, card replaced)."""


class AmountNotKnownYet(Exception):
    """A case opened from its charge's event before the invoice's own event came: the
    amount is not in the ledger yet, so the email waits for it (``notify.delivery``)."""

    def __init__(self, message: str, since: datetime) -> None:
        super().__init__(message)
        self.since = since


class Undeliverable(Exception):
    """The email applies but cannot be sent (no address); recorded as failed."""


@dataclass(frozen=True)
class Composed:
    """Everything to render and address one email, but the link (it needs the row id)."""

    kind: str
    template: str
    recipient: str
    locale: str | None
    time_zone: str | None
    context: dict[str, Any]
    needs_link: bool
    customer_id: str
    case_id: int | None = None
    subscription_id: str | None = None
    step: int | None = None
    card_unknown: bool = False  # the ledger knows no last4 for the card yet
    channel: str = EMAIL  # or SMS: ``recipient`` is then an E.164 number, or empty


def compose(
    session: Session, payload: dict[str, Any], now: datetime, settings: Settings
) -> Composed:
    """The email an action's payload asks for, as the ledger stands now."""
    kind = payload.get("kind")
    if kind == DUNNING:
        return _case_email(session, payload, now, settings)
    if kind == RENEWAL:
        return _renewal(session, payload, now, settings)
    if kind == CARD_EXPIRING:
        return _card_expiring(session, payload, settings)
    raise NotNeeded(f"unknown email kind {kind!r}")


def prefetch(session: Session, payloads: list[dict[str, Any]]) -> None:
    """Read the cases, customers, subscriptions, invoices and cards a batch of emails
    will compose from, a query a table: ``compose`` then finds them in the session."""
    case_ids = {int(p["case_id"]) for p in payloads if p.get("kind") == DUNNING and "case_id" in p}
    cases = _load(session, DunningCase, case_ids)
    customer_ids = {p["customer_id"] for p in payloads if p.get("customer_id")}
    customer_ids |= {c.customer_id for c in cases}
    sub_ids = {p["subscription_id"] for p in payloads if p.get("subscription_id")}
    sub_ids |= {c.subscription_id for c in cases if c.subscription_id}
    _load(session, Invoice, {c.invoice_id for c in cases})
    customers = {c.id: c for c in _load(session, Customer, customer_ids)}
    subs = _load(session, Subscription, sub_ids)
    cards = {charged_card_id(sub, customers.get(sub.customer_id or "")) for sub in subs}
    cards |= {charged_card_id(None, customer) for customer in customers.values()}
    _load(session, PaymentMethod, {card for card in cards if card})


def _load(session: Session, model: Any, ids: set[Any]) -> list[Any]:
    """The rows, held by the session until it closes (its identity map alone holds
    clean rows weakly: unreferenced, they would be gone before ``compose`` asks)."""
    if not ids:
        return []
    rows = list(session.scalars(select(model).where(among(model.id, sorted(ids)))))
    session.info.setdefault("prefetched", []).extend(rows)
    return rows


def _customer(session: Session, customer_id: str | None, channel: str = EMAIL) -> Customer:
    customer = session.get(Customer, customer_id) if customer_id else None
    if customer is None or customer.deleted:
        raise Undeliverable(f"customer {customer_id} does not exist")
    if channel == EMAIL and not customer.email:
        raise Undeliverable(f"customer {customer_id} has no email address")
    return customer


def _recipient(customer: Customer, channel: str) -> str:
    """The email address, or for a text the phone in E.164 ("" when there is none)."""
    if channel == SMS:
        return normalize_phone(customer.phone) or ""
    return str(customer.email)


def _card(session: Session, customer: Customer, sub: Subscription | None) -> PaymentMethod | None:
    pm_id = charged_card_id(sub, customer)
    return session.get(PaymentMethod, pm_id) if pm_id else None


def _card_context(card: PaymentMethod | None, fallback: ChargeAttempt | None) -> dict[str, Any]:
    brand = (card and card.brand) or (fallback and fallback.card_brand)
    last4 = (card and card.last4) or (fallback and fallback.card_last4) or _NO_LAST4
    return {"card_brand": brand, "card_last4": last4}


def paid_with(
    session: Session,
    paid: ChargeAttempt | None,
    customer: Customer | None,
    sub: Subscription | None,
) -> tuple[str | None, str | None]:
    """(brand, last4) of the card a payment was charged to: the charge's own card, else its
    payment method, else the card the subscription is charged with (the one just saved).

    The thank-you email and the thank-you page both say it, so both ask here.
    """
    if paid is not None and paid.card_last4:
        return paid.card_brand, paid.card_last4
    pm_id = (paid and paid.payment_method_id) or charged_card_id(sub, customer)
    card = session.get(PaymentMethod, pm_id) if pm_id else None
    return (card.brand, card.last4) if card is not None and card.last4 else (None, None)


# Statuses that paying the overdue invoice turns back into ``active`` (Stripe's rule).
_ACTIVE_ONCE_PAID = ("past_due", "unpaid", "incomplete")


def next_renewal(sub: Subscription | None) -> datetime | None:
    """When a subscription whose overdue invoice was just paid renews next, if it renews.

    The payment makes a past-due subscription active again, but the ledger may still
    hold the old status until the processor's event about it arrives; a canceled one, or
    one set to cancel at the period's end, does not renew.
    """
    if sub is None or sub.current_period_end is None:
        return None
    if renews(sub) or (sub.status in _ACTIVE_ONCE_PAID and not sub.cancel_at_period_end):
        return sub.current_period_end
    return None


def _thank_you(
    session: Session, attempts: list[ChargeAttempt], customer: Customer, sub: Subscription | None
) -> dict[str, Any]:
    """The card charged and the next renewal; None for what the ledger does not know (the
    email then leaves the sentence out rather than print a placeholder)."""
    paid = [a for a in attempts if a.outcome == "succeeded"]
    brand, last4 = paid_with(session, paid[-1] if paid else None, customer, sub)
    return {"card_brand": brand, "card_last4": last4, "renewal_date": next_renewal(sub)}


def _base(customer: Customer, sub: Subscription | None, settings: Settings) -> dict[str, Any]:
    return {
        "customer_name": customer.name,
        "plan_name": (sub and (sub.plan_name or sub.plan_id)) or settings.brand_name,
        "time_zone": customer_zone(customer.time_zone).key,
    }


def _case_email(
    session: Session, payload: dict[str, Any], now: datetime, settings: Settings
) -> Composed:
    case = session.get(DunningCase, int(payload["case_id"]))
    if case is None:
        raise NotNeeded("the case no longer exists")
    step = payload.get("step")
    _check_case_state(session, case, step)
    channel = str(payload.get("channel", EMAIL))
    customer = _customer(session, case.customer_id, channel)
    sub = session.get(Subscription, case.subscription_id) if case.subscription_id else None
    invoice = session.get(Invoice, case.invoice_id)
    attempts = session.scalars(
        select(ChargeAttempt)
        .where(ChargeAttempt.invoice_id == case.invoice_id)
        .order_by(ChargeAttempt.attempted_at)
    ).all()
    failed = [a for a in attempts if a.outcome != "succeeded"]
    amount = case.amount if case.amount is not None else (invoice.amount_due if invoice else None)
    if step == RECOVERED and case.recovered_amount is not None:
        amount = case.recovered_amount
    currency = case.currency or (invoice and invoice.currency) or (sub and sub.currency)
    if amount is None or not currency:
        raise AmountNotKnownYet(f"case {case.id} has no amount or currency", case.opened_at)
    context = {
        **_base(customer, sub, settings),
        **_card_context(_card(session, customer, sub), failed[-1] if failed else None),
        "amount": int(amount),
        "currency": currency,
        "due_date": (invoice and invoice.processor_created) or case.opened_at,
        "attempt_number": max(len(failed), 1),
        "end_date": case.closed_at or now,
    }
    if step == RECOVERED:
        context.update(_thank_you(session, list(attempts), customer, sub))
    if step == FINAL:
        context["end_date"] = datetime.fromisoformat(str(payload["end_at"]))
        context["end_action"] = END_ACTION_WORDING.get(
            str(payload.get("end_action")), "mark_unpaid"
        )
    template = str(payload["template"])
    return Composed(
        kind=DUNNING,
        template=template,
        recipient=_recipient(customer, channel),
        locale=customer.locale,
        time_zone=customer.time_zone,
        context=context,
        needs_link=step not in (RECOVERED, CANCELED),
        customer_id=customer.id,
        case_id=case.id,
        subscription_id=case.subscription_id,
        step=step if isinstance(step, int) else None,
        card_unknown=context["card_last4"] == _NO_LAST4,
        channel=channel,
    )


def _check_case_state(session: Session, case: DunningCase, step: object) -> None:
    if step == RECOVERED:
        if case.state != CaseState.RECOVERED:
            raise NotNeeded(f"case is {case.state}")
        # A claimed row may have reached the customer only if a send started and its
        # outcome was lost (its worker died: the action keeps ``started_attempt``); a
        # send refused for now (``postpone``) is known not to have gone.
        lost_send = (
            select(ScheduledAction.id)
            .where(
                ScheduledAction.dedupe_key == Notification.dedupe_key,
                ScheduledAction.started_attempt.is_not(None),
            )
            .exists()
        )
        told = session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(
                Notification.case_id == case.id,
                or_(
                    Notification.status.in_((NotificationStatus.SENT, NotificationStatus.UNKNOWN)),
                    (Notification.status == NotificationStatus.CLAIMED) & lost_send,
                ),
                Notification.template != "payment_recovered",
            )
        )
        if not told:  # paid before we ever wrote: a thank-you would puzzle the customer
            raise NotNeeded("recovered before any dunning email was sent")
    elif step == CANCELED:
        if case.state != CaseState.CANCELED:
            raise NotNeeded(f"case is {case.state}")
    elif case.state != CaseState.OPEN or case.paused:
        raise NotNeeded(
            "case is paused" if case.state == CaseState.OPEN else f"case is {case.state}"
        )


def _live_subscription(session: Session, subscription_id: str) -> Subscription:
    sub = session.get(Subscription, subscription_id)
    if sub is None or not renews(sub):
        raise NotNeeded("the subscription does not renew")
    return sub


def _renewal(
    session: Session, payload: dict[str, Any], now: datetime, settings: Settings
) -> Composed:
    sub = _live_subscription(session, str(payload["subscription_id"]))
    renewal = sub.current_period_end
    if renewal is None or renewal.date().isoformat() != payload["renewal_date"]:
        raise NotNeeded("the renewal date moved")
    if renewal <= now:
        raise NotNeeded("the renewal has passed")
    customer = _customer(session, sub.customer_id)
    amount = renewal_amount(sub)
    if amount is None or not sub.currency:
        raise Undeliverable(f"subscription {sub.id} has no amount or currency")
    zone = customer_zone(customer.time_zone)
    days_before = (renewal.astimezone(zone).date() - now.astimezone(zone).date()).days
    context = {
        **_base(customer, sub, settings),
        **_card_context(_card(session, customer, sub), None),
        "amount": amount,
        "currency": sub.currency,
        "renewal_date": renewal,
        "days_before": max(days_before, 1),
    }
    return Composed(
        kind=RENEWAL,
        template="renewal_reminder",
        recipient=str(customer.email),
        locale=customer.locale,
        time_zone=customer.time_zone,
        context=context,
        needs_link=True,
        customer_id=customer.id,
        subscription_id=sub.id,
    )


def _card_expiring(session: Session, payload: dict[str, Any], settings: Settings) -> Composed:
    card = session.get(PaymentMethod, str(payload["payment_method_id"]))
    if card is None or card.detached or card.exp_year is None or card.exp_month is None:
        raise NotNeeded("the card is gone")
    if f"{card.exp_year:04d}-{card.exp_month:02d}" != payload["exp"]:
        raise NotNeeded("the card's expiry changed (updated by the network or the customer)")
    sub = _live_subscription(session, str(payload["subscription_id"]))
    customer = _customer(session, sub.customer_id)
    charged = _card(session, customer, sub)
    if charged is None or charged.id != card.id:
        raise NotNeeded("the card is no longer the one the subscription is charged to")
    context = {
        **_base(customer, sub, settings),
        **_card_context(card, None),
        "card_exp_month": card.exp_month,
        "card_exp_year": card.exp_year,
    }
    return Composed(
        kind=CARD_EXPIRING,
        template="card_expiring",
        recipient=str(customer.email),
        locale=customer.locale,
        time_zone=customer.time_zone,
        context=context,
        needs_link=True,
        customer_id=customer.id,
        subscription_id=sub.id,
    )
