"""What a case link does: show what is due, save a new card, pay at once; or, when the
renewal waits for the customer to authenticate (3-D Secure), confirm the payment with
the card on file, on-session (:func:`start_confirm`, :func:`confirm_payment`).

(A customer link, which has no case, is ``dunning.links.customer``; when its customer
has an open case it is turned into that case's claims and comes here.)

Processor calls are made between short transactions, never inside one. Every
outcome goes on the case's timeline (``case_events``, with the notification that led
here) and every charge into the ledger through ``cases.record_charge`` with
``triggered_by=customer``, so a paid invoice closes its case as recovered by the
customer by the same rule as every other channel.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import stripe
from sqlalchemy import select
from sqlalchemy.orm import Session

from dunning.cases import authentication
from dunning.cases import service as cases
from dunning.cases.models import CaseEvent, CaseEventKind, CaseState, DunningCase
from dunning.db import session_scope
from dunning.ledger import apply
from dunning.ledger.models import ChargeAttempt, Customer, PaymentMethod, Subscription, TriggeredBy
from dunning.ledger.queries import charged_card_id
from dunning.links.tokens import LinkClaims
from dunning.processors import stripe_objects as so
from dunning.processors.stripe_adapter import (
    DefaultCard,
    PaymentMethodNotOwned,
    PayResult,
    StripeAdapter,
    TransientProcessorError,
)

SETUP_INTENT_ID = re.compile(r"^seti_[A-Za-z0-9]{1,200}$")
PAYMENT_INTENT_ID = re.compile(r"^pi_[A-Za-z0-9]{1,200}$")


class LinkRefused(Exception):
    """The link opens nothing now; ``reason`` is ``invalid``, ``paid`` or ``closed``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Outcome(StrEnum):
    """What saving a card led to; the page shows one message per outcome."""

    PAID = "paid"
    DECLINED = "declined"
    FAILED = "failed"  # refused for another reason than a card decline
    PENDING = "pending"  # the processor was unreachable: the card is saved, we retry later
    NOT_SAVED = "not_saved"  # the SetupIntent did not check out
    UNCHANGED = "unchanged"  # back from the portal with the same card
    SAVED = "saved"  # a customer link (no case): the card is saved, nothing is charged
    NOT_AUTHENTICATED = "not_authenticated"  # the customer did not confirm the payment
    PROCESSING = "processing"  # confirmed; the processor has not settled the invoice yet
    NEEDS_CONFIRMATION = "needs_confirmation"  # the new card's bank asks the customer first


@dataclass(frozen=True)
class Card:
    """The public face of a card: never more than brand, last4 and expiry."""

    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None


@dataclass(frozen=True)
class CaseView:
    """Everything the page shows about one open case."""

    case_id: int
    customer_id: str
    subscription_id: str | None
    amount: int
    currency: str
    locale: str | None
    plan_name: str | None
    interval: str | None
    interval_count: int | None
    card: Card | None
    card_failed: bool
    awaiting_action: bool = False  # the payment waits for the customer to authenticate


@dataclass(frozen=True)
class _Target:
    case_id: int
    invoice_id: str
    customer_id: str
    subscription_id: str | None


def _open_case(session: Session, claims: LinkClaims) -> DunningCase:
    """The token's case, if it is this customer's and still open (or paused: paying
    resumes the subscription)."""
    case = session.get(DunningCase, claims.case_id)
    if case is None or case.customer_id != claims.customer_id:
        raise LinkRefused("invalid")
    if case.state == CaseState.RECOVERED:
        raise LinkRefused("paid")
    if case.state not in (CaseState.OPEN, CaseState.PAUSED):
        raise LinkRefused("closed")
    return case


def _target(claims: LinkClaims) -> _Target:
    with session_scope() as session:
        case = _open_case(session, claims)
        return _Target(case.id, case.invoice_id, claims.customer_id, case.subscription_id)


def record_event(
    session: Session,
    case_id: int,
    kind: str,
    notification_id: int | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Add a customer-side event to the case's timeline."""
    session.add(
        CaseEvent(
            case_id=case_id,
            at=datetime.now(UTC),
            kind=kind,
            notification_id=notification_id,
            details=details or {},
        )
    )


def _failed_cards(session: Session, invoice_id: str) -> tuple[set[str], set[str]]:
    """Payment method ids and fingerprints that were declined on this invoice."""
    rows = session.execute(
        select(ChargeAttempt.payment_method_id, ChargeAttempt.card_fingerprint).where(
            ChargeAttempt.invoice_id == invoice_id, ChargeAttempt.outcome == "failed"
        )
    ).all()
    return {r[0] for r in rows if r[0]}, {r[1] for r in rows if r[1]}


def view_case(claims: LinkClaims, adapter: StripeAdapter) -> CaseView:
    """What is due, for which plan, and the card on file."""
    with session_scope() as session:
        case = _open_case(session, claims)
        customer = session.get(Customer, claims.customer_id)
        sub = session.get(Subscription, case.subscription_id) if case.subscription_id else None
        pm_id = charged_card_id(sub, customer)
        pm = session.get(PaymentMethod, pm_id) if pm_id else None
        known = (
            (Card(pm.brand, pm.last4, pm.exp_month, pm.exp_year), pm.fingerprint) if pm else None
        )
        failed_ids, failed_prints = _failed_cards(session, case.invoice_id)
        last_seen = session.execute(
            select(ChargeAttempt.card_brand, ChargeAttempt.card_last4)
            .where(ChargeAttempt.invoice_id == case.invoice_id)
            .order_by(ChargeAttempt.attempted_at.desc())
            .limit(1)
        ).first()
        view = CaseView(
            case_id=case.id,
            customer_id=claims.customer_id,
            subscription_id=case.subscription_id,
            amount=int(case.amount or 0),
            currency=(case.currency or "usd"),
            locale=customer.locale if customer else None,
            plan_name=sub.plan_name if sub else None,
            interval=sub.interval if sub else None,
            interval_count=sub.interval_count if sub else None,
            card=None,
            card_failed=False,
            awaiting_action=authentication.is_waiting(case),
        )
    card, fingerprint = known or fetch_card(adapter, pm_id)
    if card is None and last_seen is not None and last_seen[1]:
        card = Card(last_seen[0], last_seen[1], None, None)  # what the failed charge showed
    failed = (pm_id is not None and pm_id in failed_ids) or (fingerprint in failed_prints)
    return replace(view, card=card, card_failed=failed)


def fetch_card(adapter: StripeAdapter, pm_id: str | None) -> tuple[Card | None, str | None]:
    """A default card the ledger has not seen yet (webhooks late or missed): ask Stripe,
    and keep the answer in the ledger."""
    if not pm_id:
        return None, None
    try:
        fetched = adapter.payment_method(pm_id)
    except (TransientProcessorError, stripe.InvalidRequestError):
        return None, None
    with session_scope() as session:
        apply.apply_payment_method(session, fetched, int(time.time()))
    rec = so.read_payment_method(fetched)
    return Card(rec.brand, rec.last4, rec.exp_month, rec.exp_year), rec.fingerprint


def start_update(claims: LinkClaims, adapter: StripeAdapter) -> str:
    """A SetupIntent for the card form, and ``link_opened`` on the timeline; returns the
    client secret that Stripe.js confirms with the card."""
    target = _target(claims)
    intent = adapter.create_setup_intent(
        target.customer_id, {"dunning_case_id": str(target.case_id)}
    )
    with session_scope() as session:
        record_event(
            session,
            target.case_id,
            CaseEventKind.LINK_OPENED,
            claims.notification_id,
            {"mode": "page"},
        )
    return str(intent["client_secret"])


def start_portal(claims: LinkClaims, adapter: StripeAdapter, return_url: str) -> str:
    """A Billing Portal session on the payment-method-update flow; returns its URL."""
    target = _target(claims)
    session_obj = adapter.billing_portal_session(target.customer_id, return_url)
    with session_scope() as session:
        record_event(
            session,
            target.case_id,
            CaseEventKind.LINK_OPENED,
            claims.notification_id,
            {"mode": "portal", "portal_session": session_obj.get("id")},
        )
    return str(session_obj["url"])


def save_card(claims: LinkClaims, adapter: StripeAdapter, setup_intent_id: str) -> str:
    """The browser confirmed a SetupIntent: check it is this customer's and succeeded,
    make its card the default, and pay the open invoice with it at once."""
    if not SETUP_INTENT_ID.match(setup_intent_id):
        return Outcome.NOT_SAVED
    target = _target(claims)
    try:
        intent = adapter.setup_intent(setup_intent_id)
    except stripe.InvalidRequestError:
        return Outcome.NOT_SAVED
    pm_id = so.ref(intent.get("payment_method"))
    if (
        so.ref(intent.get("customer")) != target.customer_id
        or intent.get("status") != "succeeded"
        or not pm_id
        or (intent.get("metadata") or {}).get("dunning_case_id") != str(target.case_id)
    ):
        return Outcome.NOT_SAVED
    return _use_card(
        claims, adapter, target, pm_id, ref=setup_intent_id, via={"setup_intent": setup_intent_id}
    )


def portal_return(claims: LinkClaims, adapter: StripeAdapter) -> str:
    """Back from the Billing Portal: if the customer's default card is new, pay with it.

    A card already declined on this invoice is not charged again from a page load."""
    target = _target(claims)
    customer = adapter.customer(target.customer_id)
    pm_id = so.read_customer(customer).default_payment_method_id
    with session_scope() as session:
        failed_ids, _ = _failed_cards(session, target.invoice_id)
    if not pm_id or pm_id in failed_ids:
        return Outcome.UNCHANGED
    return _use_card(claims, adapter, target, pm_id, ref=pm_id, via={"via": "billing_portal"})


def _use_card(
    claims: LinkClaims,
    adapter: StripeAdapter,
    target: _Target,
    pm_id: str,
    *,
    ref: str,
    via: dict[str, str],
) -> str:
    try:
        default = adapter.make_default_card(target.customer_id, target.subscription_id, pm_id)
    except PaymentMethodNotOwned:
        return Outcome.NOT_SAVED
    with session_scope() as session:
        card = fold_default(session, default)
        authentication.on_new_card(session, target.case_id)
        record_event(
            session,
            target.case_id,
            CaseEventKind.CARD_UPDATED,
            claims.notification_id,
            {"payment_method": pm_id, **via, **card},
        )
    return _pay_now(claims, adapter, target, ref)


def fold_default(session: Session, default: DefaultCard) -> dict[str, Any]:
    """Put the processor's fresh objects in the ledger; return the card's public details."""
    version = int(time.time())
    apply.apply_payment_method(session, default.payment_method, version)
    apply.apply_customer(session, default.customer, version)
    if default.subscription is not None:
        apply.apply_subscription(session, default.subscription, version)
    rec = so.read_payment_method(default.payment_method)
    return {
        "brand": rec.brand,
        "last4": rec.last4,
        "exp_month": rec.exp_month,
        "exp_year": rec.exp_year,
    }


def _pay_now(claims: LinkClaims, adapter: StripeAdapter, target: _Target, ref: str) -> str:
    """Retry the open invoice with the new default card, once per card (idempotency key)."""
    invoice = adapter.invoice(target.invoice_id)
    if invoice.get("status") != "open":  # settled meanwhile: not our charge to record
        with session_scope() as session:
            apply.apply_invoice(session, invoice, int(time.time()))
            cases.on_invoice_changed(session, target.invoice_id)
        return Outcome.PAID if invoice.get("status") == "paid" else Outcome.FAILED
    key = f"dunning-case-{target.case_id}-customer-{ref}"
    now = datetime.now(UTC)
    try:
        result = adapter.pay_invoice(target.invoice_id, key)
    except TransientProcessorError as exc:
        with session_scope() as session:
            record_event(
                session,
                target.case_id,
                CaseEventKind.PAYMENT_ATTEMPTED,
                claims.notification_id,
                {"outcome": Outcome.PENDING, "error": str(exc)[:200]},
            )
        return Outcome.PENDING
    declined = (
        result.charge is not None
        or result.decline_code is not None
        or (result.error_code in ("card_declined", "expired_card", "incorrect_cvc"))
    )
    outcome = Outcome.PAID if result.paid else Outcome.DECLINED if declined else Outcome.FAILED
    if not result.paid and (
        result.error_code == "authentication_required"
        or adapter.needs_authentication(result.invoice)
    ):  # the new card's bank wants the customer present: confirm it on this page
        result = replace(result, error_code="authentication_required")
        outcome = Outcome.NEEDS_CONFIRMATION
    details = {"error_code": result.error_code, "decline_code": result.decline_code}
    _record_payment(target, claims, result, now, ref, {"outcome": outcome, **details})
    if outcome == Outcome.NEEDS_CONFIRMATION:
        with session_scope() as session:
            authentication.on_action_required(session, target.invoice_id, at=now)
    return outcome


def _record_payment(
    target: _Target,
    claims: LinkClaims,
    result: PayResult,
    now: datetime,
    ref: str,
    details: dict[str, Any],
) -> None:
    """The customer's payment: a charge attempt of the case and a timeline event."""
    with session_scope() as session:
        cases.record_charge(
            session,
            target.case_id,
            target.invoice_id,
            result,
            now,
            ref=ref,
            triggered_by=TriggeredBy.CUSTOMER,
        )
        kind = CaseEventKind.PAYMENT_ATTEMPTED
        record_event(session, target.case_id, kind, claims.notification_id, details)


def start_confirm(claims: LinkClaims, adapter: StripeAdapter) -> str | None:
    """The client secret of the invoice's payment intent that waits for the customer to
    authenticate, for Stripe.js ``confirmCardPayment`` with the card on file; None when
    there is none (the page then only offers a new card)."""
    target = _target(claims)
    invoice = adapter.invoice(target.invoice_id)
    if invoice.get("status") != "open":
        return None
    for intent_id in adapter.invoice_payment_intents(invoice):
        intent = adapter.payment_intent(intent_id)
        if (
            intent.get("status") == "requires_action"
            and so.ref(intent.get("customer")) == target.customer_id
        ):
            return str(intent["client_secret"])
    return None


def confirm_payment(claims: LinkClaims, adapter: StripeAdapter, payment_intent_id: str) -> str:
    """Stripe.js confirmed the invoice's payment intent on-session: check it is this
    invoice's and this customer's, and record its charge as the customer's.

    The processor's own answer decides: nothing the browser says is taken as paid."""
    if not PAYMENT_INTENT_ID.match(payment_intent_id):
        return Outcome.NOT_AUTHENTICATED
    target = _target(claims)
    invoice = adapter.invoice(target.invoice_id)
    if payment_intent_id not in adapter.invoice_payment_intents(invoice):
        return Outcome.NOT_AUTHENTICATED
    intent = adapter.payment_intent(payment_intent_id)
    status = intent.get("status")
    if so.ref(intent.get("customer")) != target.customer_id or status in (
        "requires_action",
        "requires_confirmation",
        "canceled",
    ):
        return Outcome.NOT_AUTHENTICATED
    if status == "processing":
        return Outcome.PROCESSING
    charge_id = so.ref(intent.get("latest_charge"))
    charge = adapter.charge(charge_id) if charge_id else None
    error = intent.get("last_payment_error") or {}
    result = PayResult(
        paid=status == "succeeded",
        invoice=invoice,
        charge=charge,
        error_code=error.get("code"),
        decline_code=error.get("decline_code"),
        message=error.get("message"),
    )
    if result.paid:
        outcome = Outcome.PAID if invoice.get("status") == "paid" else Outcome.PROCESSING
    else:
        outcome = Outcome.DECLINED if charge is not None else Outcome.NOT_AUTHENTICATED
    details = {"outcome": outcome, "via": "authentication", "payment_intent": payment_intent_id}
    _record_payment(target, claims, result, datetime.now(UTC), payment_intent_id, details)
    return outcome
