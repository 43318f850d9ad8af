"""Renewals that wait for the customer to authenticate (3-D Secure and other
customer-action declines).

When the issuer wants the cardholder present (Stripe's ``invoice.payment_action_required``,
a payment intent in ``requires_action``), no off-session retry can succeed: it would only
add a decline to the card's count at the network. So the case is marked
``awaiting_action_since``; the engine then never plans a retry (``decide(...,
awaiting_action=True)``: the policy's emails remind, the end action comes at the deadline),
the ``action_required`` email goes at once with the signed link (``notify.sequence``), and
a scheduled retry that was already claimed refuses to charge (``cases.retry``). The
customer confirms the payment on the hosted page, on-session (``links.service``).

The wait ends when the invoice is paid (``cases.service`` closes the case) or the customer
saves a new card (:func:`on_new_card`): a new card may be charged off-session again.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from dunning.cases import service as cases
from dunning.cases.models import CaseState, DunningCase

# How the case timeline and a refused retry say it.
WAITING = "waiting for the customer to authenticate"
RETRY_REFUSED = f"canceled: {WAITING} (no off-session retry)"


def on_action_required(
    session: Session, invoice_id: str, *, at: datetime, now: datetime | None = None
) -> DunningCase:
    """The processor asks the customer to authenticate the invoice's payment: open the
    case like a failed charge (or keep it), waiting for the customer since ``at``."""
    return cases.on_failed_charge(session, invoice_id, at=at, now=now, awaiting_action=True)


def is_waiting(case: DunningCase) -> bool:
    """The open case waits for the customer to authenticate its payment."""
    return case.state == CaseState.OPEN and case.awaiting_action_since is not None


def on_new_card(session: Session, case_id: int) -> None:
    """The customer saved a new card: the wait is over (the card may be charged
    off-session; the engine retries once with it)."""
    session.execute(
        update(DunningCase)
        .where(DunningCase.id == case_id, DunningCase.awaiting_action_since.is_not(None))
        .values(awaiting_action_since=None)
        .execution_options(synchronize_session="fetch")
    )
