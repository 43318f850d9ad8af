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
