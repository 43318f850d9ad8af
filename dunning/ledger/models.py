"""The ledger: the service's copy of processor objects and the failed-charge history.

Rows reference each other by processor id without foreign keys, because events
arrive in any order: a subscription may be seen before its customer. Each
snapshot row keeps ``version`` (the processor's event time of the snapshot) so an
older snapshot never overwrites a newer one (docs/architecture.md).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, func, text
from sqlalchemy.orm import Mapped, mapped_column

from dunning.db import Base


class TriggeredBy(StrEnum):
    """Who made a charge attempt (``charge_attempts.triggered_by``)."""

    PROCESSOR = "processor"  # the processor's own renewal or retry
    SERVICE = "service"  # our scheduled retry
    CUSTOMER = "customer"  # the customer, on the self-serve page
    CARD_UPDATER = "card_updater"  # our retry right after a card-updater refresh


class Customer(Base):
    """A customer as the processor last described it."""

    __tablename__ = "customers"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    processor: Mapped[str] = mapped_column(String(32), server_default="stripe")
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(255))
    locale: Mapped[str | None] = mapped_column(String(16))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(32))  # E.164, for SMS notices
    segment: Mapped[str | None] = mapped_column(String(64))
    default_payment_method_id: Mapped[str | None] = mapped_column(String(255))
    deleted: Mapped[bool] = mapped_column(Boolean, server_default="false")
    version: Mapped[int] = mapped_column(BigInteger, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class Subscription(Base):
    """A subscription and what it renews for."""

    __tablename__ = "subscriptions"
    __table_args__ = (
        Index("ix_subscriptions_customer", "customer_id"),
        # The renewal-reminder scan: live subscriptions by their next renewal.
        Index(
            "ix_subscriptions_renewal",
            "current_period_end",
            postgresql_where=text("status IN ('active', 'trialing')"),
        ),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32), server_default="unknown")
    plan_id: Mapped[str | None] = mapped_column(String(255))
    plan_name: Mapped[str | None] = mapped_column(String(255))
    interval: Mapped[str | None] = mapped_column(String(16))
    interval_count: Mapped[int | None] = mapped_column(Integer)
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    current_period_end: Mapped[datetime | None]
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, server_default="false")
    canceled_at: Mapped[datetime | None]
    default_payment_method_id: Mapped[str | None] = mapped_column(String(255))
    upcoming_amount: Mapped[int | None] = mapped_column(BigInteger)
    upcoming_at: Mapped[datetime | None]
    upcoming_version: Mapped[int | None] = mapped_column(BigInteger)  # its event's time
    start_date: Mapped[datetime | None]  # Stripe's start_date, else created: exact churn
    pause_behavior: Mapped[str | None] = mapped_column(String(32))  # pause_collection.behavior
    version: Mapped[int] = mapped_column(BigInteger, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class PaymentMethod(Base):
    """A card's public details; never a number or a CVC (docs/architecture.md)."""

    __tablename__ = "payment_methods"
    __table_args__ = (
        Index("ix_payment_methods_customer", "customer_id"),
        # The card-expiring scan: attached cards by expiry month.
        Index(
            "ix_payment_methods_expiry",
            "exp_year",
            "exp_month",
            postgresql_where=text("NOT detached"),
        ),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(String(255))
    brand: Mapped[str | None] = mapped_column(String(32))
    last4: Mapped[str | None] = mapped_column(String(4))
    exp_month: Mapped[int | None] = mapped_column(Integer)
    exp_year: Mapped[int | None] = mapped_column(Integer)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    detached: Mapped[bool] = mapped_column(Boolean, server_default="false")
    updated_by_network_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(BigInteger, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


_PAID_RENEWAL = (
    "status = 'paid' AND subscription_id IS NOT NULL"
    " AND (billing_reason = 'subscription_cycle' OR billing_reason IS NULL)"
    " AND coalesce(amount_paid, amount_due, 0) > 0"
)
"""A paid renewal with something paid: the predicate of the report indexes below."""


class Invoice(Base):
    """An invoice; its status decides whether a dunning case stays open."""

    __tablename__ = "invoices"
    __table_args__ = (
        Index("ix_invoices_customer", "customer_id"),
        Index("ix_invoices_subscription", "subscription_id"),
        # Reports: subscription invoices paid in a period (the failure-rate denominator).
        Index(
            "ix_invoices_subscription_paid_at",
            "paid_at",
            postgresql_where=text("subscription_id IS NOT NULL"),
        ),
        # Reports: did a subscription have an invoice before a date (active at that date)?
        Index("ix_invoices_subscription_created", "subscription_id", "processor_created"),
        # Reports: the invoices that may not be renewals (failed renewals = cohort less these).
        Index(
            "ix_invoices_not_cycle",
            "id",
            postgresql_where=text(
                "billing_reason <> 'subscription_cycle' OR billing_reason IS NULL"
            ),
        ),
        # Reports: paid renewals by payment time, index-only (the failure-rate denominator).
        Index(
            "ix_invoices_paid_renewals",
            "paid_at",
            postgresql_include=["id", "currency", "customer_id"],
            postgresql_where=text(_PAID_RENEWAL),
        ),
        # ... and in id order: a year of them merge-joined to the cases' invoices.
        Index(
            "ix_invoices_paid_renewal_ids",
            "id",
            postgresql_include=["paid_at", "currency", "customer_id"],
            postgresql_where=text(_PAID_RENEWAL),
        ),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(String(255))
    subscription_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32), server_default="unknown")
    billing_reason: Mapped[str | None] = mapped_column(String(64))
    amount_due: Mapped[int | None] = mapped_column(BigInteger)
    amount_paid: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    attempt_count: Mapped[int] = mapped_column(Integer, server_default="0")
    next_payment_attempt: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    voided_at: Mapped[datetime | None]
    marked_uncollectible_at: Mapped[datetime | None]
    hosted_invoice_url: Mapped[str | None] = mapped_column(Text)
    processor_created: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(BigInteger, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class ChargeAttempt(Base):
    """One charge attempt on an invoice: the append-only ledger of what failed and why.

    ``attempt_key`` is the processor's charge id, or ``<invoice>#<n>`` when an
    invoice event reports a failure without naming its charge.
    """

    __tablename__ = "charge_attempts"
    __table_args__ = (
        Index("ix_charge_attempts_invoice", "invoice_id", "attempted_at"),
        # The planner: a card's recent attempts across invoices (the networks count per card).
        Index(
            "ix_charge_attempts_card",
            "card_fingerprint",
            "attempted_at",
            postgresql_where=text("card_fingerprint IS NOT NULL"),
        ),
        # A charge of the current API names no invoice: its payment intent links it later.
        Index(
            "ix_charge_attempts_unlinked_intent",
            "payment_intent_id",
            postgresql_where=text("invoice_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    attempt_key: Mapped[str] = mapped_column(String(255), unique=True)
    charge_id: Mapped[str | None] = mapped_column(String(255))
    payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    invoice_id: Mapped[str | None] = mapped_column(String(255))
    customer_id: Mapped[str | None] = mapped_column(String(255))
    subscription_id: Mapped[str | None] = mapped_column(String(255))
    attempt_number: Mapped[int | None] = mapped_column(Integer)
    numbered_by_invoice: Mapped[bool] = mapped_column(Boolean, server_default="false")
    # The time and source came from the charge itself (charge.*), which wins over an
    # invoice event's whatever the order.
    timed_by_charge: Mapped[bool] = mapped_column(Boolean, server_default="false")
    attempted_at: Mapped[datetime]
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    outcome: Mapped[str] = mapped_column(String(16))
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_message: Mapped[str | None] = mapped_column(Text)
    decline_code: Mapped[str | None] = mapped_column(String(64))
    network_decline_code: Mapped[str | None] = mapped_column(String(16))
    advice_code: Mapped[str | None] = mapped_column(String(64))
    network_advice_code: Mapped[str | None] = mapped_column(String(16))
    card_brand: Mapped[str | None] = mapped_column(String(32))
    card_last4: Mapped[str | None] = mapped_column(String(4))
    card_fingerprint: Mapped[str | None] = mapped_column(String(64))
    payment_method_id: Mapped[str | None] = mapped_column(String(255))
    triggered_by: Mapped[str] = mapped_column(String(32), server_default="processor")
    source_event_id: Mapped[str | None] = mapped_column(String(255))
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now())


class InvoicePayment(Base):
    """Which invoice a payment intent pays (Stripe's ``invoice_payment``).

    A charge of the current API names its payment intent but not its invoice; this link
    attaches it to the invoice's attempts, whichever of the two events came first.
    """

    __tablename__ = "invoice_payments"

    payment_intent_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(255))
    invoice_payment_id: Mapped[str | None] = mapped_column(String(255))
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now())
