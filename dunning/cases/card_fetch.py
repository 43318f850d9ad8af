"""Fetch the card a case's subscription is charged with, when the ledger has none.

A case can open from ``invoice.payment_failed`` alone: no ``payment_method.*`` webhook
came, and the charge may carry no card details. Its emails would then say "card
ending in ••••" while the customer's page (which asks the processor) names the card.
So a case that opens without a known card plans one ``fetch_card`` action, due at
once: the runner reads the customer, the subscription and the charged card at the
processor (outside any transaction) and folds them into the ledger. The case's emails
wait a little for it (``notify.delivery``), never more than ``WAIT_FOR_CARD``.

The fetch is the card updater's first-read reason (``fetch``): its handler is
``dunning.card_updater.check.CheckCard``, so every read of a card at the processor is
one mechanism and one ``card_updater_requests`` row. This module only plans it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from dunning.cases.models import DunningCase
from dunning.ledger.queries import charged_card
from dunning.scheduler.models import ActionKind
from dunning.scheduler.schedule import upsert_action
from dunning.settings import get_settings


def fetch_key(case_id: int) -> str:
    return f"case:{case_id}:fetch-card"


def card_known(session: Session, case: DunningCase) -> bool:
    card = charged_card(session, case.subscription_id, case.customer_id)
    return card is not None and bool(card.last4)


def plan_fetch(session: Session, case: DunningCase, now: datetime) -> None:
    """Plan the fetch when the ledger does not know the case's card (and there is a
    processor to ask)."""
    if not get_settings().stripe_api_key:
        return
    if case.customer_id and not card_known(session, case):
        upsert_action(
            session,
            key=fetch_key(case.id),
            kind=ActionKind.FETCH_CARD,
            due=now,
            payload={
                "reason": "fetch",
                "customer_id": case.customer_id,
                "subscription_id": case.subscription_id,
            },
            case_id=case.id,
            revive_any_canceled=False,
        )
