"""Read Stripe objects of both the current API shape and the 2017 shape into plain records.

Stripe moved fields between API versions: an invoice's subscription now sits under
``parent.subscription_details``, a subscription's period end under its items, and a
charge's decline code under ``outcome.reason``. Every reader here accepts both, so the
ledger does not care which API version a webhook endpoint is pinned to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Obj = dict[str, Any]


def ts(value: Any) -> datetime | None:
    """A Stripe epoch-seconds timestamp as an aware UTC datetime."""
    if value is None or value == "":
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)


def ref(value: Any) -> str | None:
    """The id of a field that may be an id or an expanded object."""
    if isinstance(value, dict):
        return value.get("id")
    return value if isinstance(value, str) and value else None


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _lower(value: Any) -> str | None:
    return value.lower().replace(" ", "_") if isinstance(value, str) and value else None


@dataclass(frozen=True)
class CustomerRecord:
    id: str
    email: str | None
    name: str | None
    locale: str | None
    time_zone: str | None
    segment: str | None
    default_payment_method_id: str | None
    deleted: bool
    phone: str | None


def _phone(value: Any) -> str | None:
    """Stripe's phone as given; one longer than the column (Stripe allows 20) is not a
    number a text can go to."""
    return value if isinstance(value, str) and 0 < len(value) <= 32 else None


def read_customer(obj: Obj) -> CustomerRecord:
    """Customer; locale from ``preferred_locales``, time zone and segment from metadata,
    ``phone`` as Stripe has it (the SMS notices read it)."""
    metadata = obj.get("metadata") or {}
    locales = obj.get("preferred_locales") or []
    default_pm = ref(_get(obj, "invoice_settings", "default_payment_method")) or ref(
        obj.get("default_source")
    )
    return CustomerRecord(
        id=obj["id"],
        email=obj.get("email"),
        name=obj.get("name") or obj.get("description"),
        locale=(locales[0] if locales else None) or metadata.get("locale"),
        time_zone=metadata.get("time_zone") or metadata.get("timezone"),
        segment=metadata.get("segment"),
        default_payment_method_id=default_pm,
        deleted=bool(obj.get("deleted")),
        phone=_phone(obj.get("phone")),
    )


@dataclass(frozen=True)
class SubscriptionRecord:
    id: str
    customer_id: str | None
    status: str
    plan_id: str | None
    plan_name: str | None
    interval: str | None
    interval_count: int | None
    amount: int | None
    currency: str | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    default_payment_method_id: str | None
    start_date: datetime | None
    # ``pause_collection.behavior`` while paused, else None; ``says_pause`` is False for
    # shapes without the field (older API versions): the ledger keeps what it knew.
    pause_behavior: str | None = None
    says_pause: bool = False


def read_subscription(obj: Obj) -> SubscriptionRecord:
    """Subscription; plan and period from the object (2017) or its first item (current);
    ``start_date`` (else ``created``) for the reports' exact churn."""
    items = _get(obj, "items", "data") or []
    item = items[0] if items else {}
    price = item.get("price") or {}
    plan = obj.get("plan") or item.get("plan") or {}
    recurring = price.get("recurring") or {}
    unit = price.get("unit_amount")
    if unit is None:
        unit = plan.get("amount")
    quantity = item.get("quantity") or obj.get("quantity") or 1
    period_end = obj.get("current_period_end") or item.get("current_period_end")
    return SubscriptionRecord(
        id=obj["id"],
        customer_id=ref(obj.get("customer")),
        status=obj.get("status") or "unknown",
        plan_id=price.get("id") or plan.get("id"),
        plan_name=price.get("nickname") or plan.get("nickname") or plan.get("name"),
        interval=recurring.get("interval") or plan.get("interval"),
        interval_count=recurring.get("interval_count") or plan.get("interval_count"),
        amount=unit * quantity if isinstance(unit, int) else None,
        currency=_lower(obj.get("currency") or price.get("currency") or plan.get("currency")),
        current_period_end=ts(period_end),
        cancel_at_period_end=bool(obj.get("cancel_at_period_end")),
        canceled_at=ts(obj.get("canceled_at")),
        default_payment_method_id=ref(obj.get("default_payment_method"))
        or ref(obj.get("default_source")),
        start_date=ts(obj.get("start_date") or obj.get("created")),
        pause_behavior=_pause_behavior(obj.get("pause_collection")),
        says_pause="pause_collection" in obj,
    )


def _pause_behavior(pause: Any) -> str | None:
    return str(pause["behavior"]) if isinstance(pause, dict) and pause.get("behavior") else None


@dataclass(frozen=True)
class PaymentMethodRecord:
    id: str
    customer_id: str | None
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None
    fingerprint: str | None


def read_payment_method(obj: Obj) -> PaymentMethodRecord:
    """A ``payment_method`` with a card, or a legacy ``card`` source."""
    card = obj.get("card") if obj.get("object") == "payment_method" else obj
    card = card or {}
    return PaymentMethodRecord(
        id=obj["id"],
        customer_id=ref(obj.get("customer")),
        brand=_lower(card.get("brand")),
        last4=card.get("last4"),
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
        fingerprint=card.get("fingerprint"),
    )


@dataclass(frozen=True)
class InvoiceRecord:
    id: str
    customer_id: str | None
    subscription_id: str | None
    charge_id: str | None
    payment_intent_id: str | None
    status: str
    billing_reason: str | None
    amount_due: int | None
    amount_paid: int | None
    currency: str | None
    attempt_count: int
    next_payment_attempt: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    marked_uncollectible_at: datetime | None
    hosted_invoice_url: str | None
    created: datetime | None


def _invoice_status(obj: Obj) -> str:
    status = obj.get("status")
    if status:
        return str(status)
    if obj.get("paid"):
        return "paid"
    if obj.get("forgiven"):
        return "uncollectible"
    return "open" if obj.get("attempted") else "draft"


def read_invoice(obj: Obj) -> InvoiceRecord:
    """Invoice; the subscription from ``parent`` (current) or ``subscription`` (2017)."""
    transitions = obj.get("status_transitions") or {}
    subscription = ref(_get(obj, "parent", "subscription_details", "subscription")) or ref(
        obj.get("subscription")
    )
    status = _invoice_status(obj)
    return InvoiceRecord(
        id=obj["id"],
        customer_id=ref(obj.get("customer")),
        subscription_id=subscription,
        charge_id=ref(obj.get("charge")),
        payment_intent_id=ref(obj.get("payment_intent")),
        status=status,
        billing_reason=obj.get("billing_reason"),
        amount_due=obj.get("amount_due", obj.get("total")),
        amount_paid=obj.get("amount_paid"),
        currency=_lower(obj.get("currency")),
        attempt_count=int(obj.get("attempt_count") or 0),
        next_payment_attempt=ts(obj.get("next_payment_attempt")),
        paid_at=ts(transitions.get("paid_at")),
        voided_at=ts(transitions.get("voided_at")),
        marked_uncollectible_at=ts(transitions.get("marked_uncollectible_at")),
        hosted_invoice_url=obj.get("hosted_invoice_url"),
        created=ts(obj.get("created") or obj.get("date")),
    )


@dataclass(frozen=True)
class ChargeRecord:
    id: str
    invoice_id: str | None
    payment_intent_id: str | None
    customer_id: str | None
    amount: int | None
    currency: str | None
    succeeded: bool
    created: datetime | None
    failure_code: str | None
    failure_message: str | None
    decline_code: str | None
    network_decline_code: str | None
    advice_code: str | None
    network_advice_code: str | None
    card_brand: str | None
    card_last4: str | None
    card_fingerprint: str | None
    payment_method_id: str | None


def read_charge(obj: Obj) -> ChargeRecord:
    """Charge; decline details from ``outcome`` and card details from either shape."""
    outcome = obj.get("outcome") or {}
    card = _get(obj, "payment_method_details", "card") or {}
    source: dict[str, Any] = obj["source"] if isinstance(obj.get("source"), dict) else {}
    if not card and source.get("object") == "card":
        card = source
    decline = obj.get("decline_code")
    if not decline and outcome.get("type") == "issuer_declined":
        decline = outcome.get("reason")
    status = obj.get("status")
    succeeded = status in ("succeeded", "paid") if status else bool(obj.get("paid"))
    return ChargeRecord(
        id=obj["id"],
        invoice_id=ref(obj.get("invoice")),
        payment_intent_id=ref(obj.get("payment_intent")),
        customer_id=ref(obj.get("customer")),
        amount=obj.get("amount"),
        currency=_lower(obj.get("currency")),
        succeeded=succeeded,
        created=ts(obj.get("created")),
        failure_code=obj.get("failure_code"),
        failure_message=obj.get("failure_message"),
        decline_code=decline,
        network_decline_code=outcome.get("network_decline_code"),
        advice_code=outcome.get("advice_code"),
        network_advice_code=outcome.get("network_advice_code"),
        card_brand=_lower(card.get("brand")),
        card_last4=card.get("last4"),
        card_fingerprint=card.get("fingerprint"),
        payment_method_id=ref(obj.get("payment_method")) or ref(source.get("id")),
    )


@dataclass(frozen=True)
class InvoicePaymentRecord:
    id: str
    invoice_id: str | None
    payment_intent_id: str | None


def read_invoice_payment(obj: Obj) -> InvoicePaymentRecord:
    """``invoice_payment`` (current API): which invoice a payment intent pays."""
    payment = obj.get("payment") or {}
    return InvoicePaymentRecord(
        id=obj["id"],
        invoice_id=ref(obj.get("invoice")),
        payment_intent_id=ref(payment.get("payment_intent")),
    )
