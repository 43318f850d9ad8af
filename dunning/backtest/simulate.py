"""Run one simulated case under one decider, one attempt at a time.

Why this loop and not a formula: it replays what the service does. After every failed
attempt and every card change the planner asks the engine again with the history as it
stands, the emails go out on the policy's own days, and the world answers each attempt
at the time it happens. The order of events is the order the workers would see.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache

from dunning.backtest.cases import EMAIL_DRAWS, Codes, SimCase
from dunning.backtest.checker import SimAttempt, check
from dunning.backtest.deciders import Decider
from dunning.backtest.issuer import Card, charge
from dunning.backtest.world import World
from dunning.policy.declines import DeclineClass, classify
from dunning.policy.records import Attempt, DecisionKind

MAX_STEPS = 2000  # far more than any policy's attempts; a loop that does not end is a bug
RETRY, UPDATER, CUSTOMER = "retry", "card_updater", "customer"


@dataclass
class CaseResult:
    """How one case ended under one decider."""

    index: int
    code: str
    decline_class: DeclineClass
    usd: float
    ended: str  # recovered | gave_up | canceled
    by: str | None = None  # retry | card_updater | customer
    days: float | None = None  # from the failure to the recovery
    retries: int = 0  # merchant-initiated attempts after the first failure
    violations: Counter[str] = field(default_factory=Counter)
    attempts: list[SimAttempt] = field(default_factory=list)

    @property
    def recovered(self) -> bool:
        return self.ended == "recovered"


def first_class(case: SimCase) -> DeclineClass:
    """The engine's class of the case's first decline (the report groups by it)."""
    return _class_of(case.codes)


@lru_cache(maxsize=1024)
def _class_of(c: Codes) -> DeclineClass:
    return classify(
        c.decline_code, None, c.advice_code, c.network_advice_code,
        network_decline_code=c.network_decline_code,
    )  # fmt: skip


def customer_events(
    world: World, case: SimCase, email_days: list[float], cls: DeclineClass
) -> list[tuple[datetime, str]]:
    """When the customer updates the card or cancels, given the emails a policy sends."""
    customers = world.customers
    found: list[tuple[datetime, str]] = []
    p = customers.update_first_email
    for j, day in enumerate(sorted(email_days)[:EMAIL_DRAWS]):
        u = case.email_draws[j]
        if u < p + customers.cancel_per_email:
            at = case.failed_at + timedelta(days=day + case.email_delays[j])
            found.append((at, CUSTOMER if u < p else "cancel"))
            break
        p *= customers.update_decay
    if cls is DeclineClass.AUTHENTICATION_REQUIRED and case.action_draw < (
        customers.action_required_update
    ):
        found.append((case.failed_at + timedelta(days=case.action_delay), CUSTOMER))
    if case.updater_at is not None:
        found.append((case.updater_at, UPDATER))
    return sorted(found)


def _attempt(case: SimCase, at: datetime, codes: Codes, card: Card, merchant: bool) -> Attempt:
    return Attempt(
        at=at,
        amount=case.amount,
        currency=case.currency,
        decline_code=codes.decline_code,
        network_decline_code=codes.network_decline_code,
        advice_code=codes.advice_code,
        network_advice_code=codes.network_advice_code,
        card_brand=case.brand,
        card_fingerprint=f"fp{int(card)}",
        merchant_initiated=merchant,
    )


def run_case(world: World, case: SimCase, decider: Decider) -> CaseResult:
    """Simulate the case from its first failure until it is recovered, canceled or lost."""
    cls = first_class(case)
    result = CaseResult(case.index, case.code, cls, case.usd, "gave_up")
    t0 = case.failed_at
    history = [_attempt(case, t0, case.codes, Card.ORIGINAL, merchant=True)]
    sims = [SimAttempt(t0, 0, True, case.amount, case.codes)]
    events = customer_events(world, case, list(decider.email_days), cls)
    card, updated_at, now = Card.ORIGINAL, None, t0

    def attempt(at: datetime, merchant: bool) -> bool:
        codes = charge(world, case, at, card, len(sims), history[-1].at)
        sims.append(SimAttempt(at, int(card), merchant, case.amount, codes))
        if codes is None:
            by = CUSTOMER if not merchant else UPDATER if card is Card.UPDATER else RETRY
            result.ended, result.by = "recovered", by
            result.days = (at - t0).total_seconds() / 86400
            return True
        history.append(_attempt(case, at, codes, card, merchant))
        return False

    for _ in range(MAX_STEPS):
        fresh = updated_at if updated_at is not None and updated_at > history[-1].at else None
        decision = decider.decide(case, history, now, fresh)
        if decision.kind is DecisionKind.GIVE_UP:
            break
        target = decision.at
        if target is None or target < now:
            raise AssertionError(f"{decider.name}: decision without a future time: {decision}")
        if events and events[0][0] <= target:
            now, kind = events.pop(0)
            now = max(now, t0)
            if kind == "cancel":
                result.ended = "canceled"
                break
            if kind == UPDATER:
                if card is Card.ORIGINAL:
                    card, updated_at = Card.UPDATER, now
                continue
            card, updated_at = Card.CUSTOMER, now
            if attempt(now, merchant=False):
                break
            continue
        if decision.kind is DecisionKind.RETRY:
            now = target
            if attempt(now, merchant=True):
                break
            continue
        if target <= now:
            break  # waiting until now: nothing more will happen
        now = target
    else:
        raise AssertionError(f"{decider.name}: case {case.index} did not end")
    result.attempts = sims
    result.retries = sum(1 for a in sims[1:] if a.merchant)
    result.violations = check(case.brand, sims)
    return result
