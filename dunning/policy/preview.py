"""Schedule preview: run the engine forward to show ops what a policy will do.

Why: ops need to see a policy's timeline before applying it; this drives the same
``decide`` the workers use, so the preview cannot drift from production behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from dunning.policy.engine import decide
from dunning.policy.models import Policy
from dunning.policy.records import Attempt, Card, Decision, DecisionKind

Outcomes = Callable[[int], Attempt | None]
"""Given the attempt number, the simulated result of that attempt (its ``at`` is set by
the simulator); ``None`` repeats the previous decline."""


def simulate(
    policy: Policy,
    first_failure: Attempt,
    *,
    time_zone: str,
    outcomes: Outcomes | None = None,
    account_time_zone: str = "UTC",
    card_brand: str | None = None,
    card_history: Sequence[Attempt] = (),
    processor_retry_at: datetime | None = None,
    cards: Sequence[Card] = (),
    max_steps: int = 200,
) -> list[Decision]:
    """Decisions from the first failure to the end of the case.

    By default every retry fails with the same decline as the first failure. The list
    ends with GIVE_UP, or with the RETRY whose simulated outcome succeeded.
    ``processor_retry_at``: the processor's own scheduled retry, passed to every
    decision as the workers do, so the preview shows our retries moved after it.
    ``cards``: the cards on file, the charged one first (``first_failure`` was on it);
    a retry's simulated attempt is on the card the decision names.
    """
    if first_failure.succeeded:
        raise ValueError("first_failure must be a failed attempt")
    history = [first_failure]
    now = first_failure.at
    decisions: list[Decision] = []
    for _ in range(max_steps):
        decision = decide(
            policy,
            history,
            now=now,
            time_zone=time_zone,
            card_brand=card_brand,
            card_history=card_history,
            account_time_zone=account_time_zone,
            processor_retry_at=processor_retry_at,
            cards=cards,
        )
        decisions.append(decision)
        if decision.kind is DecisionKind.GIVE_UP or decision.at is None:
            break
        now = decision.at
        if decision.kind is not DecisionKind.RETRY:
            continue  # nothing happens until the deadline, then the case gives up
        outcome = outcomes(decision.attempt_number) if outcomes is not None else None
        card = decision.card or (cards[0] if cards else None)
        attempt = replace(outcome or history[-1], at=decision.at)
        if card is not None:
            attempt = replace(attempt, card_fingerprint=card.fingerprint, card_brand=card.brand)
        if attempt.succeeded:
            break
        history.append(attempt)
    return decisions
