"""What a customer link does: show the next renewal and the card on file, save a card.

A customer link (``tokens.make_customer_link``) has no case: renewal reminders and
card-expiring notices carry it. :func:`resolve` decides what it opens, every time it
is used (the ledger may have moved since the email went out):

1. An unknown customer is an invalid link; a deleted one, a closed link.
2. The subscription is the one the email was about (the notification the token names,
   if it is this customer's); for a link without one, the customer's live subscription
   that renews next.
3. If that subscription (or, without one named, the customer) has an open dunning
   case, the link behaves exactly like that case's link: what is due, and a saved card
   pays the invoice at once (``dunning.links.service``). A customer who opens a
   card-expiring notice after a renewal already failed wants it paid, not only a card
   saved for later.
4. Otherwise the subscription must still renew (``active`` or ``trialing``, not
   canceling at period end): the page shows the renewal date and amount and the card
   on file, flagged when it expires before the renewal. A canceled subscription is a
   closed link.

Saving a card here charges nothing (no invoice is due): the card becomes the default
on the customer and on the subscription, goes into the ledger, and the change is
recorded in the audit log (actor ``customer:<id>``), since a case timeline needs a
case. Processor calls are made between short transactions, never inside one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session

from dunning.admin.audit import record_audit
from dunning.admin.models import AuditEntry
from dunning.cases.models import CaseState, DunningCase
from dunning.db import session_scope
from dunning.ledger.models import Customer, PaymentMethod, Subscription
from dunning.ledger.queries import (
    LIVE_SUBSCRIPTION,
    charged_card_id,
    last_day_of_month,
    renewal_amount,
    renews,
)
from dunning.links.service import (
    SETUP_INTENT_ID,
    Card,
    LinkRefused,
    Outcome,
    fetch_card,
    fold_default,
)
from dunning.links.tokens import CustomerLinkClaims, LinkClaims
from dunning.notify.models import Notification
from dunning.processors import stripe_objects as so
from dunning.processors.stripe_adapter import PaymentMethodNotOwned, StripeAdapter
from dunning.timezones import customer_zone

# SetupIntent metadata that ties an intent to the customer link that made it; a case
# link's intents carry ``dunning_case_id`` instead, so neither is accepted by the other.
INTENT_SUBSCRIPTION_KEY = "dunning_subscription_id"
AUDIT_ACTION = "customer.card_updated"


@dataclass(frozen=True)
class RenewalTarget:
    """A customer link with no open case: this customer's subscription renewing."""

    customer_id: str
    subscription_id: str
    notification_id: int | None


@dataclass(frozen=True)
class RenewalView:
    """Everything the renewal page shows."""

    customer_id: str
    subscription_id: str
    locale: str | None
    time_zone: str
    plan_name: str | None
    interval: str | None
    interval_count: int | None
    renews_at: datetime
    amount: int | None
    currency: str | None
    card: Card | None
    card_expires_before_renewal: bool


def _renews(sub: Subscription | None, customer_id: str) -> bool:
    return (
        sub is not None
        and sub.customer_id == customer_id
        and renews(sub)
        and sub.current_period_end is not None
    )


def _customer(session: Session, customer_id: str) -> Customer:
    customer = session.get(Customer, customer_id)
    if customer is None:
        raise LinkRefused("invalid")
    if customer.deleted:
        raise LinkRefused("closed")
    return customer


def _emailed_subscription(session: Session, claims: CustomerLinkClaims) -> str | None:
    """The subscription of the email the link came in, if it was this customer's."""
    if claims.notification_id is None:
        return None
    notification = session.get(Notification, claims.notification_id)
    if notification is None or notification.customer_id != claims.customer_id:
        return None
    return notification.subscription_id


def _open_case(session: Session, customer_id: str, subscription_id: str | None) -> int | None:
    stmt = select(DunningCase.id).where(
        DunningCase.customer_id == customer_id, DunningCase.state == CaseState.OPEN
    )
    if subscription_id is not None:
        stmt = stmt.where(DunningCase.subscription_id == subscription_id)
    return session.scalar(stmt.order_by(DunningCase.opened_at, DunningCase.id).limit(1))


def _next_renewing(session: Session, customer_id: str) -> Subscription | None:
    return session.scalars(
        select(Subscription)
        .where(
            Subscription.customer_id == customer_id,
            Subscription.status.in_(LIVE_SUBSCRIPTION),
            Subscription.cancel_at_period_end.is_(False),
            Subscription.current_period_end.is_not(None),
        )
        .order_by(Subscription.current_period_end, Subscription.id)
        .limit(1)
    ).first()


def resolve(claims: CustomerLinkClaims) -> LinkClaims | RenewalTarget:
    """What the link opens now: an open case's claims, or a renewal; else ``LinkRefused``."""
    with session_scope() as session:
        _customer(session, claims.customer_id)
        emailed = _emailed_subscription(session, claims)
        case_id = _open_case(session, claims.customer_id, emailed)
        if case_id is not None:
            return LinkClaims(
                case_id, claims.customer_id, claims.notification_id, claims.expires_at
            )
        sub = (
            session.get(Subscription, emailed)
            if emailed
            else _next_renewing(session, claims.customer_id)
        )
        if sub is None or not _renews(sub, claims.customer_id):
            raise LinkRefused("closed")
        return RenewalTarget(claims.customer_id, sub.id, claims.notification_id)


def _rows(session: Session, target: RenewalTarget) -> tuple[Customer, Subscription]:
    """The target's rows, checked again: the ledger may have moved since ``resolve``."""
    customer = _customer(session, target.customer_id)
    sub = session.get(Subscription, target.subscription_id)
    if sub is None or not _renews(sub, target.customer_id):
        raise LinkRefused("closed")
    return customer, sub


def expires_before(card: Card | None, renews_at: datetime, time_zone: str) -> bool:
    """Whether the card's last valid day (the end of its expiry month) comes before the
    renewal's day in the customer's time zone."""
    if card is None or not card.exp_month or not card.exp_year:
        return False
    renewal_day = renews_at.astimezone(customer_zone(time_zone)).date()
    return last_day_of_month(card.exp_year, card.exp_month) < renewal_day


def view_renewal(target: RenewalTarget, adapter: StripeAdapter) -> RenewalView:
    """The next renewal (date, amount) and the card it will be charged to."""
    with session_scope() as session:
        customer, sub = _rows(session, target)
        pm_id = charged_card_id(sub, customer)
        pm = session.get(PaymentMethod, pm_id) if pm_id else None
        known = Card(pm.brand, pm.last4, pm.exp_month, pm.exp_year) if pm else None
        assert sub.current_period_end is not None  # _renews
        time_zone = customer_zone(customer.time_zone).key
        view = RenewalView(
            customer_id=customer.id,
            subscription_id=sub.id,
            locale=customer.locale,
            time_zone=time_zone,
            plan_name=sub.plan_name,
            interval=sub.interval,
            interval_count=sub.interval_count,
            renews_at=sub.current_period_end,
            amount=renewal_amount(sub),
            currency=sub.currency,
            card=known,
            card_expires_before_renewal=False,
        )
    card = known or fetch_card(adapter, pm_id)[0]
    warn = expires_before(card, view.renews_at, time_zone)
    return replace(view, card=card, card_expires_before_renewal=warn)


def start_update(target: RenewalTarget, adapter: StripeAdapter) -> str:
    """A SetupIntent for the card form, tied to this customer link; its client secret."""
    intent = adapter.create_setup_intent(
        target.customer_id, {INTENT_SUBSCRIPTION_KEY: target.subscription_id}
    )
    return str(intent["client_secret"])


def start_portal(target: RenewalTarget, adapter: StripeAdapter, return_url: str) -> str:
    """A Billing Portal session on the payment-method-update flow; returns its URL."""
    return str(adapter.billing_portal_session(target.customer_id, return_url)["url"])


def save_card(target: RenewalTarget, adapter: StripeAdapter, setup_intent_id: str) -> str:
    """The browser confirmed a SetupIntent: check it is this link's and succeeded, and
    make its card the default. Nothing is charged."""
    if not SETUP_INTENT_ID.match(setup_intent_id):
        return Outcome.NOT_SAVED
    try:
        intent = adapter.setup_intent(setup_intent_id)
    except stripe.InvalidRequestError:
        return Outcome.NOT_SAVED
    pm_id = so.ref(intent.get("payment_method"))
    metadata = intent.get("metadata") or {}
    if (
        so.ref(intent.get("customer")) != target.customer_id
        or intent.get("status") != "succeeded"
        or not pm_id
        or metadata.get(INTENT_SUBSCRIPTION_KEY) != target.subscription_id
        or "dunning_case_id" in metadata
    ):
        return Outcome.NOT_SAVED
    return _use_card(target, adapter, pm_id, {"setup_intent": setup_intent_id})


def portal_return(target: RenewalTarget, adapter: StripeAdapter) -> str:
    """Back from the Billing Portal: a new default card at the customer is made the
    subscription's too, and recorded; nothing is charged."""
    pm_id = so.read_customer(adapter.customer(target.customer_id)).default_payment_method_id
    with session_scope() as session:
        customer, sub = _rows(session, target)
        current = charged_card_id(sub, customer)
    if not pm_id or pm_id == current:
        return Outcome.UNCHANGED
    return _use_card(target, adapter, pm_id, {"via": "billing_portal"})


def _use_card(
    target: RenewalTarget, adapter: StripeAdapter, pm_id: str, via: dict[str, str]
) -> str:
    try:
        default = adapter.make_default_card(target.customer_id, target.subscription_id, pm_id)
    except PaymentMethodNotOwned:
        return Outcome.NOT_SAVED
    with session_scope() as session:
        _rows(session, target)
        card = fold_default(session, default)
        if not _recorded(session, target.customer_id, via):  # a form posted twice: once
            record_audit(
                session,
                f"customer:{target.customer_id}"[:255],
                AUDIT_ACTION,
                "customer",
                target.customer_id,
                {
                    "subscription": target.subscription_id,
                    "payment_method": pm_id,
                    "notification_id": target.notification_id,
                    **via,
                    **card,
                },
            )
    return Outcome.SAVED


def _recorded(session: Session, customer_id: str, via: dict[str, str]) -> bool:
    """Whether this SetupIntent's card change is in the audit log already."""
    setup_intent = via.get("setup_intent")
    if setup_intent is None:
        return False
    return bool(
        session.scalar(
            select(AuditEntry.id)
            .where(
                AuditEntry.action == AUDIT_ACTION,
                AuditEntry.target_type == "customer",
                AuditEntry.target_id == customer_id,
                AuditEntry.details["setup_intent"].astext == setup_intent,
            )
            .limit(1)
        )
    )
