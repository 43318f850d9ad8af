"""The thank-you after a payment on the customer's page: which card paid, and when the
subscription renews next.

Shown only right after the payment (``?result=paid``, within ``WINDOW`` of the case
closing as recovered): a link opened again later, perhaps forwarded, gets the plain
thank-you that shows nothing of the account. The card and the renewal are the ones the
thank-you email names (``dunning.notify.compose``), so page and email agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from dunning.cases.models import CaseState, DunningCase
from dunning.db import session_scope
from dunning.ledger.models import ChargeAttempt, Customer, Subscription
from dunning.links.tokens import Claims, CustomerLinkClaims
from dunning.notify.compose import next_renewal, paid_with
from dunning.timezones import customer_zone

WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class ThankYou:
    """What the thank-you page adds to its title: the card charged and the next renewal."""

    card_brand: str | None
    card_last4: str | None
    renews_at: datetime | None
    time_zone: str
    locale: str | None


def _recovered_case(session: Session, claims: Claims, since: datetime) -> DunningCase | None:
    """The link's case (a customer link: the customer's case) recovered since ``since``."""
    stmt = select(DunningCase).where(
        DunningCase.customer_id == claims.customer_id,
        DunningCase.state == CaseState.RECOVERED,
        DunningCase.closed_at >= since,
    )
    if not isinstance(claims, CustomerLinkClaims):
        stmt = stmt.where(DunningCase.id == claims.case_id)
    return session.scalars(stmt.order_by(DunningCase.closed_at.desc()).limit(1)).first()


def thank_you(claims: Claims, now: datetime | None = None) -> ThankYou | None:
    """The details of a payment this link made just now; None when there is none."""
    since = (now or datetime.now(UTC)) - WINDOW
    with session_scope() as session:
        case = _recovered_case(session, claims, since)
        if case is None:
            return None
        customer = session.get(Customer, case.customer_id)
        sub = session.get(Subscription, case.subscription_id) if case.subscription_id else None
        paid = session.scalars(
            select(ChargeAttempt)
            .where(
                ChargeAttempt.invoice_id == case.invoice_id, ChargeAttempt.outcome == "succeeded"
            )
            .order_by(ChargeAttempt.attempted_at.desc())
            .limit(1)
        ).first()
        brand, last4 = paid_with(session, paid, customer, sub)
        return ThankYou(
            card_brand=brand,
            card_last4=last4,
            renews_at=next_renewal(sub),
            time_zone=customer_zone(customer.time_zone if customer else None).key,
            locale=customer.locale if customer else None,
        )
