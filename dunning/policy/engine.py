"""The pure retry engine: policy + attempt history + now -> the next decision.

Why pure: the workers, the preview command, the admin API and the backtest all call
this one function (docs/architecture.md); with no I/O it is deterministic and can be
tested exhaustively. Every decision leaves through the network guard, ops' "retry now"
and the processor's own scheduled retry included, so the preview shows what will happen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dunning.policy.declines import DeclineClass, classify
from dunning.policy.models import ClassAction, EndAction, Policy
from dunning.policy.network_rules import CardContext, evaluate, guard
from dunning.policy.records import Attempt, Card, Decision, DecisionKind
from dunning.policy.timing import fit, next_payday_slot, resolve_zone

__all__ = [
    "AFTER_PROCESSOR_RETRY",
    "Attempt",
    "Card",
    "Decision",
    "DecisionKind",
    "DeclineClass",
    "EndAction",
    "classify_attempts",
    "decide",
]

_MAX_SETTLE_STEPS = 1000
# When the processor (Stripe Smart Retries) has its own retry scheduled for the invoice,
# ours waits this long after it, so the two never double up.
AFTER_PROCESSOR_RETRY = timedelta(hours=1)


def classify_attempts(history: Sequence[Attempt]) -> list[DeclineClass]:
    """Decline class of each failed attempt, oldest first."""
    return [
        classify(
            a.decline_code,
            a.failure_code,
            a.advice_code,
            a.network_advice_code,
            network_decline_code=a.network_decline_code,
        )
        for a in history
        if not a.succeeded
    ]


def _check_inputs(history: Sequence[Attempt], now: datetime) -> list[Attempt]:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not history:
        raise ValueError("history is empty: the engine needs at least one failed attempt")
    if any(a.at.tzinfo is None for a in history):
        raise ValueError("attempt times must be timezone-aware")
    ordered = sorted(history, key=lambda a: a.at)
    if ordered[-1].succeeded:
        raise ValueError("the last attempt succeeded: the case is recovered, nothing to decide")
    return ordered


def _describe(a: Attempt) -> str:
    codes = [
        a.decline_code or a.failure_code,
        a.network_decline_code and f"network {a.network_decline_code}",
        a.advice_code and f"advice {a.advice_code}",
        a.network_advice_code and f"MAC {a.network_advice_code}",
    ]
    return ", ".join(c for c in codes if c) or "no code"


def _local(t: datetime, tz: ZoneInfo) -> str:
    return f"{t.astimezone(tz):%a %Y-%m-%d %H:%M} {tz.key}"


@dataclass(frozen=True)
class _Case:
    """Facts derived once from the inputs."""

    policy: Policy
    history: list[Attempt]
    now: datetime
    tz: ZoneInfo
    decline_class: DeclineClass
    deadline: datetime
    card: CardContext
    processor_retry_at: datetime | None = None
    backup: Card | None = None  # the retry uses this card, not the one the processor charges

    @property
    def number(self) -> int:
        return len(self.history) + 1

    def give_up(self, reason: str) -> Decision:
        return Decision(
            DecisionKind.GIVE_UP,
            self.now,
            f"{reason}; end action: {self.policy.end_action}",
            self.decline_class,
            self.policy.end_action,
            self.number,
        )

    def wait(self, reason: str) -> Decision:
        kind = (
            DecisionKind.CUSTOMER_ACTION
            if self.decline_class is DeclineClass.AUTHENTICATION_REQUIRED
            else DecisionKind.WAIT_FOR_CARD
        )
        deadline = f"gives up at {_local(self.deadline, self.tz)}"
        return Decision(
            kind, self.deadline, f"{reason}; {deadline}", self.decline_class, None, self.number
        )

    def retry(self, earliest: datetime, reason: str, payday: bool = False) -> Decision:
        timing = self.policy.timing
        processor = self.processor_retry_at
        if processor is not None and earliest < processor + AFTER_PROCESSOR_RETRY:
            earliest = processor + AFTER_PROCESSOR_RETRY
            reason = f"{reason}; after the processor's own retry at {processor:%Y-%m-%d %H:%M} UTC"
        t = (
            next_payday_slot(earliest, timing, self.tz)
            if payday
            else fit(earliest, timing, self.tz)
        )
        pushed: list[str] = []
        for _ in range(_MAX_SETTLE_STEPS):
            if t > self.deadline:
                break
            verdict = evaluate(t, self.card)
            if verdict.blocked_by is not None or verdict.at == t:
                break
            pushed += [rule for rule in verdict.pushed_by if rule not in pushed]
            t = fit(verdict.at, timing, self.tz)
        if pushed:
            reason = f"{reason}; moved later by {', '.join(pushed)}"
        if self.backup is not None:
            reason = f"{reason}; on {self.backup.label}"
        if t > self.deadline:
            return self.wait(
                f"{reason}; the next allowed retry slot ({_local(t, self.tz)}) is after the "
                "case deadline"
            )
        limit = self.policy.limits.max_attempts
        of = (
            f"of {limit}" if self.number <= limit else f"(a new card; {limit} were for the old one)"
        )
        at = f"attempt {self.number} {of} at {_local(t, self.tz)}"
        return Decision(
            DecisionKind.RETRY,
            t,
            f"{reason}; {at}",
            self.decline_class,
            None,
            self.number,
            self.backup,
        )

    def on_card(self, card: Card) -> _Case:
        """The same case, retried on ``card``: the network rules see that card alone."""
        context = CardContext.build(
            self.history,
            card_brand=card.brand,
            card_history=card.history,
            card_fingerprint=card.fingerprint,
        )
        return replace(self, card=context, backup=card)


def _backup_in_use(history: Sequence[Attempt], cards: Sequence[Card]) -> Card | None:
    """The backup card the last attempt used (a cascade's card keeps its retries), if any.

    ``cards[0]`` is the card the processor charges: a retry on it names no card."""
    fingerprint = history[-1].card_fingerprint
    if not fingerprint:
        return None
    return next((c for c in cards[1:] if c.fingerprint == fingerprint), None)


def _cascade(case: _Case, cards: Sequence[Card], earliest: datetime, why: str) -> Decision | None:
    """A retry on the next usable card on file, in the ledger's order, or None.

    A card is usable when its fingerprint is known and none of this case's declines
    was on it (a hard decline binds its card), and it is not expired on the retry date.
    """
    declined = {a.card_fingerprint for a in case.history if not a.succeeded}
    for card in cards:
        if card.fingerprint is None or card.fingerprint in declined:
            continue
        decision = case.on_card(card).retry(earliest, f"{why}: cascade to a backup card")
        if decision.kind is DecisionKind.RETRY and decision.at and not card.expired_at(decision.at):
            return decision
    return None


def _policy_step(
    case: _Case, last: Attempt, classes: list[DeclineClass], cards: Sequence[Card]
) -> Decision:
    cls = case.decline_class
    block = case.policy.classes.for_class(cls)
    why = f"{cls} decline ({_describe(last)})"
    if block.cascade:
        spacing = timedelta(hours=case.policy.timing.min_spacing_hours)
        cascade = _cascade(case, cards, max(case.now, last.at + spacing), why)
        if cascade is not None:
            return cascade
        why = f"{why}, no usable backup card"
    if block.action is ClassAction.GIVE_UP:
        return case.give_up(f"{why}: policy gives up on this class")
    if block.action is ClassAction.WAIT_FOR_CARD:
        return case.wait(f"{why}: no blind retry, waiting for the customer")
    spacing = timedelta(hours=case.policy.timing.min_spacing_hours)
    earliest = max(case.now, last.at + spacing)
    in_a_row = 0  # failures of this class at the end of the history: picks the backoff step
    for previous in reversed(classes):
        if previous is not cls:
            break
        in_a_row += 1
    why = f"{why}: retry {in_a_row} of this class"
    if block.backoff_hours:
        hours = block.backoff_hours[min(in_a_row - 1, len(block.backoff_hours) - 1)]
        earliest = max(earliest, last.at + timedelta(hours=hours))
        why = f"{why}, at least {hours:g} h after the last attempt"
    if block.payday:
        why = f"{why}, on the next payday"
    return case.retry(earliest, why, payday=block.payday)


def decide(
    policy: Policy,
    history: Sequence[Attempt],
    *,
    now: datetime,
    time_zone: str,
    card_brand: str | None = None,
    card_history: Sequence[Attempt] = (),
    card_updated_at: datetime | None = None,
    account_time_zone: str = "UTC",
    processor_retry_at: datetime | None = None,
    retry_now: bool = False,
    awaiting_action: bool = False,
    cards: Sequence[Card] = (),
) -> Decision:
    """The next step of a dunning case.

    ``history``: the case's attempts, oldest first, the last one failed.
    ``card_history``: other recent attempts on the same card (network limits).
    ``card_updated_at``: a new card was put on file at that time; if after the last
    failure, the case retries once with it, whatever the decline class.
    ``processor_retry_at``: the processor's own retry of the invoice is scheduled then;
    a retry of ours lands at least ``AFTER_PROCESSOR_RETRY`` later.
    ``retry_now``: ops asked for a retry now; the policy's class action, timing and
    limits are skipped, the network rules are not (the guard may block or postpone it).
    ``awaiting_action``: the processor needs the customer to authenticate the payment
    (3-D Secure): no retry of ours could succeed off-session, so the case waits for
    the customer (the policy's emails remind) and ends at the deadline; retry_now too.
    ``cards``: the customer's usable cards on file, the charged one first; a class rule
    with ``cascade`` retries on the next of them, and a retry after a backup card's
    decline stays on that card (``Decision.card``; the guard counts per card).
    """
    ordered = _check_inputs(history, now)
    classes = classify_attempts(ordered)
    last = ordered[-1]
    first_failure = next(a for a in ordered if not a.succeeded)
    case = _Case(
        policy=policy,
        history=ordered,
        now=now,
        tz=resolve_zone(time_zone, account_time_zone),
        decline_class=DeclineClass.AUTHENTICATION_REQUIRED if awaiting_action else classes[-1],
        deadline=first_failure.at + timedelta(days=policy.limits.max_days),
        card=CardContext.build(
            ordered,
            card_brand=card_brand,
            card_history=card_history,
            card_updated_at=card_updated_at,
        ),
        processor_retry_at=processor_retry_at,
    )
    new_card = card_updated_at is not None and card_updated_at > last.at
    backup = None if new_card else _backup_in_use(ordered, cards)
    if backup is not None:
        case = case.on_card(backup)
    limits = policy.limits
    if awaiting_action and now < case.deadline:
        decision = case.wait(
            "waiting for the customer to authenticate the payment: no off-session retry"
        )
    elif retry_now and not awaiting_action:
        decision = Decision(
            DecisionKind.RETRY,
            now,
            f"retry now, asked by ops ({case.decline_class} decline: {_describe(last)}); "
            "the policy's timing and limits are skipped, the network rules are not",
            case.decline_class,
            None,
            case.number,
            backup,
        )
    elif now >= case.deadline:
        decision = case.give_up(f"{limits.max_days} days since the first failure")
    elif new_card and card_updated_at is not None:
        spacing = timedelta(hours=policy.timing.min_spacing_hours)
        decision = case.retry(
            max(now, card_updated_at, last.at + spacing),
            f"new card on file since {card_updated_at:%Y-%m-%d %H:%M} UTC: retry once with it",
        )
    elif len(ordered) >= limits.max_attempts:
        # No more retries of this card, but the case stays open until the deadline: a
        # customer or the card updater may still bring a new card (which is retried).
        decision = case.wait(
            f"{len(ordered)} attempts made, the limit is {limits.max_attempts}: "
            "no more retries of this card"
        )
    else:
        decision = _policy_step(case, last, classes, cards)
    chosen = decision.card
    return guard(
        decision,
        history=ordered,
        card_brand=chosen.brand if chosen else card_brand,
        card_history=chosen.history if chosen else card_history,
        card_updated_at=None if chosen else card_updated_at,
        deadline=case.deadline,
        card_fingerprint=chosen.fingerprint if chosen else None,
    )
