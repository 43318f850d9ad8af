"""Value types shared by the engine and the network guard (kept apart to avoid a cycle)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from dunning.policy.declines import DeclineClass
from dunning.policy.models import EndAction


@dataclass(frozen=True)
class Attempt:
    """One charge attempt, as the ledger records it."""

    at: datetime  # timezone-aware UTC
    amount: int  # minor units
    currency: str
    succeeded: bool = False
    decline_code: str | None = None
    failure_code: str | None = None
    network_decline_code: str | None = None
    advice_code: str | None = None
    network_advice_code: str | None = None
    card_brand: str | None = None  # "visa", "mastercard", "amex", ... lower case
    card_fingerprint: str | None = None
    merchant_initiated: bool = True


@dataclass(frozen=True)
class Card:
    """A usable card on file, for the cascade to a backup card (ledger order kept)."""

    id: str  # the processor's payment method id
    fingerprint: str | None = None
    brand: str | None = None
    last4: str | None = None
    exp_month: int | None = None
    exp_year: int | None = None
    history: tuple[Attempt, ...] = ()  # its recent attempts on other invoices (network limits)

    @property
    def label(self) -> str:
        """How ops see it on the timeline: ``visa •••• 4242 (pm_123)``."""
        return f"{self.brand or 'card'} •••• {self.last4 or '????'} ({self.id})"

    def expired_at(self, at: datetime) -> bool:
        """True when the card can no longer be charged at ``at`` (after its expiry month)."""
        if self.exp_year is None or self.exp_month is None:
            return False
        return (at.year, at.month) > (self.exp_year, self.exp_month)


class DecisionKind(StrEnum):
    """What the case does next."""

    RETRY = "retry"
    WAIT_FOR_CARD = "wait_for_card"
    CUSTOMER_ACTION = "customer_action"
    GIVE_UP = "give_up"


@dataclass(frozen=True)
class Decision:
    """The engine's answer.

    ``at``: when to retry (UTC) for RETRY; the case deadline for WAIT_FOR_CARD and
    CUSTOMER_ACTION; ``now`` for GIVE_UP.
    """

    kind: DecisionKind
    at: datetime | None
    reason: str  # human readable, shown to ops on the case timeline
    decline_class: DeclineClass
    end_action: EndAction | None  # set for GIVE_UP
    attempt_number: int  # the number the next attempt will carry
    card: Card | None = None  # a retry on a card other than the one the processor charges
