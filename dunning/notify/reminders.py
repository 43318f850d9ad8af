"""Renewal reminders and card-expiring notices, found in the ledger by a periodic scan.

Beat runs :func:`scan` every ``DUNNING_EMAIL_SCAN_INTERVAL_SECONDS``. Each run reads
only what is close (two indexed range queries: subscriptions renewing within the
largest reminder horizon, cards expiring within the largest notice horizon) and
writes a ``send_email`` action for every reminder whose day has come in the
customer's time zone. Keys make each reminder once per renewal and per expiry:

* ``renewal:<subscription>:<renewal date>:<days>``
* ``card_expiring:<payment method>:<YYYY-MM>:<days>``

A reminder is written only on its local day (or, after an outage, late but once:
the next configured reminder not yet past stands in for the missed one), due at the
start of the customer's allowed hours or now if inside them. Whether it still
applies is checked again when it is sent. Reminders are planned whenever a mail
backend is configured; their button is the customer's signed self-serve link
(``dunning.links.tokens.make_customer_link``).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import and_, select, tuple_
from sqlalchemy.orm import Session

from dunning.db import session_scope
from dunning.ledger.models import Customer, PaymentMethod, Subscription
from dunning.ledger.queries import CHARGED_CARD_ID, LIVE_SUBSCRIPTION, last_day_of_month
from dunning.notify import hours
from dunning.notify.sequence import CARD_EXPIRING, RENEWAL, emails_enabled, schedule_email
from dunning.settings import Settings, get_settings
from dunning.timezones import customer_zone


def reminder_day(days_left: int, configured: list[int]) -> int | None:
    """Which configured reminder is due with ``days_left`` days to go, if any.

    The smallest configured day at or above ``days_left``: on day 7 of (7, 3, 2) it is
    7; on days 6..4 it is still 7 (a missed 7-day reminder goes out late, once, since
    its key is the same); nothing once the date itself has come.
    """
    candidates = [day for day in configured if day >= days_left]
    return min(candidates) if days_left >= 1 and candidates else None


def scan(now: datetime) -> int:
    """Plan the reminders due at ``now``; returns how many keys it (re)wrote."""
    settings = get_settings()
    if not emails_enabled(settings):
        return 0
    with session_scope() as session:
        return _renewals(session, now, settings) + _expiring_cards(session, now, settings)


def _due(now: datetime, time_zone: str | None, settings: Settings) -> tuple[datetime, date]:
    """When a reminder written now goes out, and that moment's local date."""
    due = hours.next_allowed(now, time_zone, settings)
    return due, due.astimezone(customer_zone(time_zone)).date()


def _renewals(session: Session, now: datetime, settings: Settings) -> int:
    plans = {k: sorted(v) for k, v in settings.renewal_reminders.items() if v}
    if not plans:
        return 0
    horizon = now + timedelta(days=max(max(v) for v in plans.values()) + 2)
    rows = session.execute(
        select(Subscription, Customer.time_zone)
        .join(Customer, Customer.id == Subscription.customer_id)
        .where(
            Subscription.status.in_(LIVE_SUBSCRIPTION),  # ix_subscriptions_renewal (0005)
            Subscription.current_period_end > now,
            Subscription.current_period_end < horizon,
            Subscription.cancel_at_period_end.is_(False),
            Subscription.interval.in_(list(plans)),
        )
    ).all()
    written = 0
    for sub, time_zone in rows:
        renewal = sub.current_period_end
        assert renewal is not None and sub.interval is not None
        due, local_day = _due(now, time_zone, settings)
        days_left = (renewal.astimezone(customer_zone(time_zone)).date() - local_day).days
        day = reminder_day(days_left, plans[sub.interval])
        if day is None or due >= renewal:
            continue
        renewal_date = renewal.date().isoformat()
        payload = {
            "kind": RENEWAL,
            "template": "renewal_reminder",
            "subscription_id": sub.id,
            "customer_id": sub.customer_id,
            "renewal_date": renewal_date,
            "days": day,
        }
        schedule_email(session, f"renewal:{sub.id}:{renewal_date}:{day}", due, payload)
        written += 1
    return written


def _expiring_cards(session: Session, now: datetime, settings: Settings) -> int:
    days = sorted(settings.card_expiring_days)
    if not days:
        return 0
    first, last = now - timedelta(days=1), now + timedelta(days=max(days) + 2)
    continuing = and_(
        Subscription.customer_id == PaymentMethod.customer_id,
        Subscription.status.in_(LIVE_SUBSCRIPTION),
        Subscription.cancel_at_period_end.is_(False),
    )
    rows = session.execute(
        select(PaymentMethod, Customer.time_zone, Subscription.id)
        .join(Customer, Customer.id == PaymentMethod.customer_id)
        .join(Subscription, continuing)
        .where(
            PaymentMethod.detached.is_(False),  # ix_payment_methods_expiry (0005)
            tuple_(PaymentMethod.exp_year, PaymentMethod.exp_month).between(
                tuple_(first.year, first.month), tuple_(last.year, last.month)
            ),
            PaymentMethod.id == CHARGED_CARD_ID,
        )
    ).all()
    written = 0
    for card, time_zone, subscription_id in rows:
        assert card.exp_year is not None and card.exp_month is not None
        _, local_day = _due(now, time_zone, settings)
        days_left = (last_day_of_month(card.exp_year, card.exp_month) - local_day).days
        day = reminder_day(days_left + 1, days)  # the last day itself still counts
        if day is None:
            continue
        exp = f"{card.exp_year:04d}-{card.exp_month:02d}"
        payload = {
            "kind": CARD_EXPIRING,
            "template": "card_expiring",
            "payment_method_id": card.id,
            "subscription_id": subscription_id,
            "customer_id": card.customer_id,
            "exp": exp,
            "days": day,
        }
        due, _ = _due(now, time_zone, settings)
        schedule_email(session, f"card_expiring:{card.id}:{exp}:{day}", due, payload)
        written += 1
    return written
