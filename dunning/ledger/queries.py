"""Ledger rules that several features read: one home for each.

Which card a subscription is charged with (and the backup cards after it), the
customer's time zone, whether a subscription still renews and for how much, the last
day a card can be charged, and how a processor charge becomes a charge-attempt row.

While the cases follow a batch of ledger changes (``reads_once``), the planner, the
card updater and the emails ask for the same customer, subscription, card and attempts
several times: each is read once, fresh (``prefetch`` reads a whole batch's in a few
queries), and forgotten whenever the ledger writes (``forget_reads``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from dunning.db import among
from dunning.ledger.models import ChargeAttempt, Customer, PaymentMethod, Subscription, TriggeredBy
from dunning.processors.stripe_objects import ChargeRecord

T = TypeVar("T")

LIVE_SUBSCRIPTION = ("active", "trialing")
_READS = "ledger_reads_of_this_event"
_NEAR = timedelta(days=2)  # invoice.upcoming for this renewal, not an older one

# The card a subscription is charged with, as SQL: its own default, else the customer's.
CHARGED_CARD_ID: ColumnElement[Any] = func.coalesce(
    Subscription.default_payment_method_id, Customer.default_payment_method_id
)


@contextmanager
def reads_once(session: Session) -> Iterator[None]:
    """Read each ledger row at most once inside this block (re-entrant: an inner block
    shares the outer one's reads)."""
    if _READS in session.info:
        yield
        return
    session.info[_READS] = {}
    try:
        yield
    finally:
        session.info.pop(_READS, None)


def forget_reads(session: Session) -> None:
    """The ledger changed: the next read goes to the database again."""
    reads = session.info.get(_READS)
    if reads:
        reads.clear()


def read_once(session: Session, key: tuple[Any, ...], load: Callable[[], T]) -> T:
    """``load()``, or what it returned earlier for the same event and ledger state."""
    reads: dict[tuple[Any, ...], Any] | None = session.info.get(_READS)
    if reads is None:
        return load()
    if key not in reads:
        reads[key] = load()
    value: T = reads[key]
    return value


def _get(session: Session, model: Any, key: str) -> Any:
    """A row; while an event is applied, as it stands now, not as an earlier event of
    the same transaction saw it."""
    if _READS not in session.info:
        return session.get(model, key)
    return read_once(session, (model, key), lambda: session.get(model, key, populate_existing=True))


def invoice_attempts(session: Session, invoice_id: str) -> list[ChargeAttempt]:
    """The invoice's charge attempts in the order they happened."""
    return read_once(
        session,
        ("attempts", invoice_id),
        lambda: list(
            session.scalars(
                select(ChargeAttempt)
                .where(ChargeAttempt.invoice_id == invoice_id)
                .order_by(ChargeAttempt.attempted_at, ChargeAttempt.attempt_key)
                .execution_options(populate_existing=True)
            )
        ),
    )


def card_attempts(session: Session, fingerprint: str, since: datetime) -> list[ChargeAttempt]:
    """Every attempt on the card (by fingerprint, across invoices) since ``since``."""
    return read_once(
        session,
        ("card attempts", fingerprint, since),
        lambda: list(
            session.scalars(
                select(ChargeAttempt)
                .where(
                    ChargeAttempt.card_fingerprint == fingerprint,
                    ChargeAttempt.attempted_at >= since,
                )
                .execution_options(populate_existing=True)
            )
        ),
    )


def prefetch(
    session: Session,
    invoice_ids: list[str],
    subscription_ids: list[str | None],
    customer_ids: list[str | None],
    *,
    card_attempts_since: datetime,
) -> None:
    """Read a batch's attempts, subscriptions, customers, charged cards and those cards'
    attempts since ``card_attempts_since`` in five queries, so the cases that follow
    find them read (inside ``reads_once`` only)."""
    reads: dict[tuple[Any, ...], Any] | None = session.info.get(_READS)
    if reads is None:
        return
    by_invoice: dict[str, list[ChargeAttempt]] = {i: [] for i in invoice_ids}
    for row in session.scalars(
        select(ChargeAttempt)
        .where(among(ChargeAttempt.invoice_id, invoice_ids))
        .order_by(ChargeAttempt.attempted_at, ChargeAttempt.attempt_key)
        .execution_options(populate_existing=True)
    ):
        by_invoice[row.invoice_id or ""].append(row)
    reads.update({("attempts", i): rows for i, rows in by_invoice.items()})
    subscriptions = _load(session, Subscription, subscription_ids)
    customers = _load(session, Customer, customer_ids)
    cards = {
        charged_card_id(subscriptions.get(s or ""), customers.get(c or ""))
        for s, c in zip(subscription_ids, customer_ids, strict=True)
    }
    charged = _load(session, PaymentMethod, list(cards))
    fingerprints = {card.fingerprint for card in charged.values() if card.fingerprint}
    by_card: dict[str, list[ChargeAttempt]] = {f: [] for f in fingerprints}
    if fingerprints:
        for row in session.scalars(
            select(ChargeAttempt)
            .where(
                among(ChargeAttempt.card_fingerprint, fingerprints),
                ChargeAttempt.attempted_at >= card_attempts_since,
            )
            .execution_options(populate_existing=True)
        ):
            by_card[row.card_fingerprint or ""].append(row)
    reads.update({("card attempts", f, card_attempts_since): rows for f, rows in by_card.items()})


def _load(session: Session, model: Any, ids: list[str | None]) -> dict[str, Any]:
    """Rows by id, fresh, remembered as read (a missing row as None); rows this block
    already read are not read again."""
    reads = session.info.get(_READS, {})
    known = {i: reads[(model, i)] for i in ids if i and (model, i) in reads}
    wanted = {i for i in ids if i and i not in known}
    rows = dict(known)
    if wanted:
        found = session.scalars(
            select(model).where(among(model.id, wanted)).execution_options(populate_existing=True)
        )
        rows.update({row.id: row for row in found})
    if _READS in session.info:
        reads.update({(model, i): rows.get(i) for i in wanted})
    return {i: row for i, row in rows.items() if row is not None}


def remember(session: Session, key: tuple[Any, ...], value: Any) -> None:
    """Note a row just read or written under ``key`` (inside ``reads_once`` only)."""
    reads = session.info.get(_READS)
    if reads is not None:
        reads[key] = value


def charged_card_id(subscription: Subscription | None, customer: Customer | None) -> str | None:
    """The subscription's default payment method, else the customer's (Stripe's rule)."""
    if subscription is not None and subscription.default_payment_method_id:
        return subscription.default_payment_method_id
    return customer.default_payment_method_id if customer is not None else None


def charged_card(
    session: Session, subscription_id: str | None, customer_id: str | None
) -> PaymentMethod | None:
    """The payment method the next charge of this subscription (or customer) will use."""
    subscription = _get(session, Subscription, subscription_id) if subscription_id else None
    customer = _get(session, Customer, customer_id) if customer_id else None
    pm_id = charged_card_id(subscription, customer)
    return _get(session, PaymentMethod, pm_id) if pm_id else None


def cards_on_file(
    session: Session, subscription_id: str | None, customer_id: str | None
) -> list[PaymentMethod]:
    """The customer's attached cards in cascade order: the charged card first, then the
    others by most recently updated (expiry and declines are the engine's to judge)."""
    if not customer_id:
        return []
    charged = charged_card(session, subscription_id, customer_id)
    others = session.scalars(
        select(PaymentMethod)
        .where(PaymentMethod.customer_id == customer_id, PaymentMethod.detached.is_(False))
        .order_by(PaymentMethod.updated_at.desc(), PaymentMethod.id)
    ).all()
    first = [charged] if charged is not None and not charged.detached else []
    return first + [pm for pm in others if charged is None or pm.id != charged.id]


def customer_time_zone(session: Session, customer_id: str | None) -> str | None:
    """The customer's IANA zone as the processor gave it (may be missing or invalid)."""
    customer = _get(session, Customer, customer_id) if customer_id else None
    return customer.time_zone if customer else None


def renews(subscription: Subscription | None) -> bool:
    """Whether the subscription will renew: live and not canceling at period end."""
    return (
        subscription is not None
        and subscription.status in LIVE_SUBSCRIPTION
        and not subscription.cancel_at_period_end
    )


def renewal_amount(subscription: Subscription) -> int | None:
    """``invoice.upcoming``'s amount (tax, discounts, proration) when it is for this
    renewal, else the plan amount."""
    end = subscription.current_period_end
    upcoming_at = subscription.upcoming_at
    if (
        subscription.upcoming_amount is not None
        and upcoming_at
        and end
        and abs(upcoming_at - end) <= _NEAR
    ):
        return subscription.upcoming_amount
    return subscription.amount


def last_day_of_month(year: int, month: int) -> date:
    """The last day a card expiring ``month/year`` can be charged."""
    first_next = date(year + month // 12, month % 12 + 1, 1)
    return date.fromordinal(first_next.toordinal() - 1)


def attempt_from_charge(
    charge: ChargeRecord | None,
    *,
    attempt_key: str,
    invoice_id: str | None,
    attempted_at: datetime | None,
    succeeded: bool,
    triggered_by: TriggeredBy,
    source_event_id: str,
) -> dict[str, Any]:
    """The charge-attempt row for a processor charge (or for a charge we know only by
    its outcome, when the processor reported no charge object)."""
    c = charge
    return {
        "attempt_key": attempt_key,
        "charge_id": c.id if c else None,
        "payment_intent_id": c.payment_intent_id if c else None,
        "invoice_id": invoice_id,
        "customer_id": c.customer_id if c else None,
        "attempted_at": attempted_at or (c and c.created) or datetime.now(UTC),
        "amount": c.amount if c else None,
        "currency": c.currency if c else None,
        "outcome": "succeeded" if succeeded else "failed",
        "failure_code": c.failure_code if c else None,
        "failure_message": c.failure_message if c else None,
        "decline_code": c.decline_code if c else None,
        "network_decline_code": c.network_decline_code if c else None,
        "advice_code": c.advice_code if c else None,
        "network_advice_code": c.network_advice_code if c else None,
        "card_brand": c.card_brand if c else None,
        "card_last4": c.card_last4 if c else None,
        "card_fingerprint": c.card_fingerprint if c else None,
        "payment_method_id": c.payment_method_id if c else None,
        "triggered_by": triggered_by.value,
        "source_event_id": source_event_id,
    }
