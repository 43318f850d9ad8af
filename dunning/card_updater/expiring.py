"""The daily scan: ask the card updater about default cards that expire before their
subscription's next renewal, so the renewal is charged to the reissued card.

Beat runs :func:`scan` with the reminder scan. For each live subscription renewing
within ``HORIZON`` whose charged card (its default, else the customer's) expires
before the renewal, it plans one ``check_card`` action with no case, keyed
``card-updater:expiring:<card>:<renewal date>``: once per card and renewal, however
often the scan runs. A hit folds the new card into the ledger like any other answer
(``card_updater_requests`` keeps the row, ``case_id`` empty); the card-expiring
notice, checked again when it is sent, then no longer goes out.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, select, tuple_
from sqlalchemy.orm import Session

from dunning.card_updater.plan import Reason
from dunning.db import session_scope
from dunning.ledger.models import Customer, PaymentMethod, Subscription
from dunning.ledger.queries import CHARGED_CARD_ID, LIVE_SUBSCRIPTION, last_day_of_month
from dunning.scheduler.models import ActionKind
from dunning.scheduler.schedule import upsert_action

HORIZON = timedelta(days=35)  # about one monthly period: early enough, and issuers have reissued


def expiring_key(payment_method_id: str, renewal: datetime) -> str:
    return f"card-updater:expiring:{payment_method_id}:{renewal:%Y-%m-%d}"


def scan(now: datetime) -> int:
    """Plan the checks due at ``now``; returns how many keys it (re)wrote."""
    with session_scope() as session:
        return plan_checks(session, now)


def plan_checks(session: Session, now: datetime) -> int:
    last = now + HORIZON
    rows = session.execute(
        select(PaymentMethod, Subscription.id, Subscription.current_period_end)
        .select_from(Subscription)
        .join(Customer, Customer.id == Subscription.customer_id, isouter=True)
        .join(PaymentMethod, PaymentMethod.id == CHARGED_CARD_ID)
        .where(
            Subscription.status.in_(LIVE_SUBSCRIPTION),  # ix_subscriptions_renewal
            Subscription.cancel_at_period_end.is_(False),
            Subscription.current_period_end.between(now, last),
            PaymentMethod.detached.is_(False),
            # a cheap bound first (the card's month is before the renewal's); exact below
            tuple_(PaymentMethod.exp_year, PaymentMethod.exp_month)
            <= tuple_(last.year, last.month),
            and_(PaymentMethod.exp_year.is_not(None), PaymentMethod.exp_month.is_not(None)),
        )
    ).all()
    written = 0
    for card, subscription_id, renewal in rows:
        assert card.exp_year is not None and card.exp_month is not None and renewal is not None
        if last_day_of_month(card.exp_year, card.exp_month) >= renewal.date():
            continue
        upsert_action(
            session,
            key=expiring_key(card.id, renewal),
            kind=ActionKind.CHECK_CARD,
            due=now,
            payload={
                "reason": Reason.EXPIRING.value,
                "customer_id": card.customer_id,
                "subscription_id": subscription_id,
            },
            case_id=None,
            revive_any_canceled=False,
        )
        written += 1
    return written
