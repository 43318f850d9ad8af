"""What a card account updater is asked and answers, and the Stripe provider.

A provider is asked for a card's current details and answers one of five results.
Processors that run an updater the merchant calls (Adyen ``scheduleAccountUpdater``,
Checkout.com's real-time account updater, Worldpay ``requestAccountUpdater``) fit the
same interface. Stripe updates saved cards itself, so its provider re-reads the card
the subscription is charged with (its default, else the customer's) and compares it
with what the ledger knew: that catches a missed or late
``payment_method.automatically_updated`` webhook. Stripe reports no closed accounts
on a payment method, so the Stripe provider never answers ``account_closed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from dunning.processors import stripe_objects as so
from dunning.processors.stripe_adapter import StripeAdapter, TransientProcessorError


class Result(StrEnum):
    """A provider's answer about one card."""

    UNCHANGED = "unchanged"
    NEW_EXPIRY = "new_expiry"  # same card, reissued with a new expiry (or last4)
    NEW_CARD = "new_card"  # another card is now the one charged
    ACCOUNT_CLOSED = "account_closed"  # never charge this card again
    CONTACT_CARDHOLDER = "contact_cardholder"  # no usable card: only the customer can help


HITS = (Result.NEW_EXPIRY, Result.NEW_CARD)  # the card changed: a card update for the engine


@dataclass(frozen=True)
class KnownCard:
    """The card as the ledger knows it (any field may be unknown)."""

    payment_method_id: str | None = None
    fingerprint: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None


@dataclass(frozen=True)
class CardQuery:
    customer_id: str
    subscription_id: str | None
    known: KnownCard


@dataclass(frozen=True)
class Answer:
    """The result, what changed (before/after), and the processor objects read, so the
    ledger can take them in."""

    result: Result
    changes: dict[str, Any] = field(default_factory=dict)
    payment_method: dict[str, Any] | None = None
    customer: dict[str, Any] | None = None
    subscription: dict[str, Any] | None = None


class Provider(Protocol):
    name: str
    transient: tuple[type[Exception], ...]  # not an answer: ask again later

    def ask(self, query: CardQuery) -> Answer:
        """The card's current details; called with no transaction open."""
        ...


def _expiry(month: int | None, year: int | None) -> str | None:
    return f"{month:02d}/{year}" if month and year else None


def compare(known: KnownCard, current: dict[str, Any] | None) -> tuple[Result, dict[str, Any]]:
    """What changed between the card the ledger knew and the one charged now."""
    if current is None:
        return Result.CONTACT_CARDHOLDER, {"card": [known.payment_method_id, None]}
    now = so.read_payment_method(current)
    if (known.payment_method_id and now.id != known.payment_method_id) or (
        known.fingerprint and now.fingerprint and now.fingerprint != known.fingerprint
    ):
        before = f"{known.payment_method_id} {known.last4 or '????'}"
        return Result.NEW_CARD, {"card": [before, f"{now.id} {now.last4 or '????'}"]}
    changes: dict[str, Any] = {}
    was, is_ = _expiry(known.exp_month, known.exp_year), _expiry(now.exp_month, now.exp_year)
    if was and is_ and was != is_:
        changes["expiry"] = [was, is_]
    if known.last4 and now.last4 and known.last4 != now.last4:
        changes["last4"] = [known.last4, now.last4]
    return (Result.NEW_EXPIRY if changes else Result.UNCHANGED), changes


class StripeProvider:
    """Re-read the charged card at Stripe (which runs the networks' updater itself)."""

    name = "stripe"
    transient: tuple[type[Exception], ...] = (TransientProcessorError,)

    def __init__(self, adapter: StripeAdapter) -> None:
        self.adapter = adapter

    def ask(self, query: CardQuery) -> Answer:
        read = self.adapter.charged_card(query.customer_id, query.subscription_id)
        result, changes = compare(query.known, read.payment_method)
        return Answer(result, changes, read.payment_method, read.customer, read.subscription)
