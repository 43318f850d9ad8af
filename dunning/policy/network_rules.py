"""Card-network retry rules, enforced around every decision the engine returns.

Why here and not in the policy: breaking these rules costs fees per attempt and can
get the merchant flagged, and no policy, however configured, may do it
(docs/architecture.md). The guard is deliberately on the safe side where the
rules leave room for reading:

- an unknown card brand is treated as both Visa and Mastercard;
- merchant advice codes (MAC) are honoured whatever the brand that sends one (Stripe
  has a single ``network_advice_code`` field);
- counts include every decline on the card (this case and ``card_history``), the
  original decline too, and attempts after a card update (the card updater may keep
  the same card number); only a new card lifts the "never retry" rules: one put on
  file after the attempt (``card_updated_at``), or one the last attempt already used
  (another fingerprint than the attempts that got the never-retry code);
- a retry on a backup card (the policy's ``cascade``) is checked against that card
  alone: its attempts count, the declined card's do not (``card_fingerprint``).

Rules and sources:

VISA_CATEGORY_1
    Visa "Excessive reattempts" rule (Visa Core Rules; decline category codes in
    force since April 2021 / fees since April 2022): a transaction declined with a
    category 1 response code (issuer will never approve) must not be reattempted.
    Codes: 04, 07, 12, 14, 41, 43, 46, 57, R0, R1, R3, and 15 for reattempts before
    2025-04-12 (Visa moved 15 out of category 1 in its April 2025 release).
VISA_REATTEMPT_LIMIT
    Same Visa rule: at most 15 reattempts of declined (category 2-4) transactions per
    card in 30 days, 20 for reattempts on or after 2025-05-19. Counted on
    merchant-initiated attempts only.
MC_DO_NOT_RETRY
    Mastercard merchant advice codes (MAC) 03 "do not try again" and 21 "payment
    cancellation": never retry (Mastercard Transaction Processing Excellence, TPE).
MC_RETRY_AFTER
    Mastercard Authorization Optimizer / MAC 24-30 (US from Oct 2023, EEA/UK from Jan
    2024): retry no earlier than 1 h (24), 24 h (25), 2 (26), 4 (27), 6 (28), 8 (29)
    or 10 (30) days after the decline.
MC_EXCESSIVE_24H / MC_EXCESSIVE_30D
    Mastercard TPE "Excessive authorization attempts": at most 10 declines per card
    in 24 hours, and at most 35 per card, merchant and amount in 30 days.
STRIPE_DO_NOT_TRY_AGAIN
    Stripe ``outcome.advice_code = do_not_try_again``
    (https://docs.stripe.com/declines/card#retrying-issuer-declines): never retry,
    whatever the brand.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from dunning.policy.declines import normalize_code
from dunning.policy.records import Attempt, Decision, DecisionKind

VISA_CATEGORY_1: frozenset[str] = frozenset(
    {"04", "07", "12", "14", "41", "43", "46", "57", "R0", "R1", "R3"}
)
VISA_CODE_15_CATEGORY_1_UNTIL = datetime(2025, 4, 12, tzinfo=UTC)
VISA_WINDOW = timedelta(days=30)
VISA_LIMIT = 15
VISA_LIMIT_FROM_2025_05_19 = 20
VISA_LIMIT_RAISED_AT = datetime(2025, 5, 19, tzinfo=UTC)

MC_NEVER_RETRY: frozenset[str] = frozenset({"03", "21"})
MC_RETRY_AFTER: dict[str, timedelta] = {
    "24": timedelta(hours=1),
    "25": timedelta(hours=24),
    "26": timedelta(days=2),
    "27": timedelta(days=4),
    "28": timedelta(days=6),
    "29": timedelta(days=8),
    "30": timedelta(days=10),
}
MC_DAY_WINDOW = timedelta(hours=24)
MC_DAY_LIMIT = 10
MC_MONTH_WINDOW = timedelta(days=30)
MC_MONTH_LIMIT = 35

STRIPE_DO_NOT_TRY_AGAIN = "do_not_try_again"


@dataclass(frozen=True)
class CardContext:
    """What the guard knows about the card the next attempt will use."""

    brand: str | None
    amount: int
    currency: str
    blocking: tuple[Attempt, ...]
    """Attempts on the current card credentials: case attempts after the last card
    update made with the card of the last attempt (same fingerprint, or unknown), plus
    ``card_history``."""
    counted: tuple[Attempt, ...]
    """Every attempt that counts toward waits and limits (case + ``card_history``)."""

    @classmethod
    def build(
        cls,
        history: Sequence[Attempt],
        *,
        card_brand: str | None = None,
        card_history: Sequence[Attempt] = (),
        card_updated_at: datetime | None = None,
        card_fingerprint: str | None = None,
    ) -> CardContext:
        """Assemble the context from the case history and other attempts on the card.

        ``card_fingerprint``: the next attempt uses this card (a cascade to a backup
        card), so only its own attempts bind it and count toward its limits, plus the
        case's attempts whose card is unknown (counted, on the safe side)."""
        if not history:
            raise ValueError("history is empty: the guard needs the case's attempts")
        last = sorted(history, key=lambda a: a.at)[-1]
        if card_fingerprint is not None:
            brand = card_brand
            return cls(
                brand=brand.strip().lower() if brand else None,
                amount=last.amount,
                currency=last.currency.lower(),
                blocking=_unique(
                    [a for a in history if a.card_fingerprint == card_fingerprint], card_history
                ),
                counted=_unique(
                    [a for a in history if a.card_fingerprint in (None, card_fingerprint)],
                    card_history,
                ),
            )
        brand = card_brand or last.card_brand
        current = last.card_fingerprint
        on_card = [  # the never-retry rules bind the card that got them, not its successor
            a
            for a in history
            if (card_updated_at is None or a.at > card_updated_at)
            and (current is None or a.card_fingerprint in (None, current))
        ]
        return cls(
            brand=brand.strip().lower() if brand else None,
            amount=last.amount,
            currency=last.currency.lower(),
            blocking=_unique(on_card, card_history),
            counted=_unique(history, card_history),
        )

    def is_visa(self, attempt: Attempt | None = None) -> bool:
        """Visa rules apply (an unknown brand counts as Visa)."""
        return _brand(self, attempt) in {None, "visa"}

    def is_mastercard(self, attempt: Attempt | None = None) -> bool:
        """Mastercard rules apply (an unknown brand counts as Mastercard)."""
        return _brand(self, attempt) in {None, "mastercard"}

    def declines(self) -> list[Attempt]:
        """Failed attempts that count toward limits and waits."""
        return [a for a in self.counted if not a.succeeded]


def _span(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return f"{hours} h" if hours <= 24 else f"{hours // 24} days"


def _brand(ctx: CardContext, attempt: Attempt | None) -> str | None:
    if attempt is not None and attempt.card_brand:
        return attempt.card_brand.strip().lower()
    return ctx.brand


def _unique(attempts: Sequence[Attempt], card_history: Sequence[Attempt]) -> tuple[Attempt, ...]:
    """Drop exact duplicates (a caller may pass the case's attempts in card_history too).

    Without ``card_history`` there is nothing to drop: the case's own attempts are
    distinct ledger rows (and counting one twice would only make the guard stricter).
    """
    if not card_history:
        return tuple(attempts)
    return tuple(dict.fromkeys([*attempts, *card_history]))


@dataclass(frozen=True)
class Verdict:
    """Outcome of checking a proposed retry time."""

    at: datetime
    blocked_by: str | None = None
    pushed_by: tuple[str, ...] = ()


# ---------------------------------------------------------------- rules that forbid ---


def _stripe_do_not_try_again(at: datetime, ctx: CardContext) -> str | None:
    for a in ctx.blocking:
        if normalize_code("advice_code", a.advice_code) == STRIPE_DO_NOT_TRY_AGAIN:
            return (
                f"Stripe advice_code do_not_try_again on the attempt of {a.at:%Y-%m-%d %H:%M} "
                "UTC: never retried (docs.stripe.com/declines/card)"
            )
    return None


def visa_category_1(code: str | None, at: datetime) -> bool:
    """True when ``code`` is a Visa category-1 (never approve) code for a retry at ``at``."""
    key = normalize_code("network_decline_code", code)
    if key == "15":
        return at < VISA_CODE_15_CATEGORY_1_UNTIL
    return key in VISA_CATEGORY_1


def _visa_category_1(at: datetime, ctx: CardContext) -> str | None:
    for a in ctx.blocking:
        if visa_category_1(a.network_decline_code, at) and not a.succeeded and ctx.is_visa(a):
            return (
                f"Visa category-1 response code {a.network_decline_code} "
                f"({a.at:%Y-%m-%d}): the issuer will never approve; no reattempt "
                "(Visa excessive reattempts rule)"
            )
    return None


def _mc_do_not_retry(at: datetime, ctx: CardContext) -> str | None:
    for a in ctx.blocking:
        mac = normalize_code("network_advice_code", a.network_advice_code)
        if not a.succeeded and mac in MC_NEVER_RETRY:
            return (
                f"Mastercard merchant advice code {mac} ({a.at:%Y-%m-%d}): never retry "
                "(Mastercard TPE / merchant advice codes)"
            )
    return None


BLOCK_RULES: tuple[Callable[[datetime, CardContext], str | None], ...] = (
    _stripe_do_not_try_again,
    _visa_category_1,
    _mc_do_not_retry,
)

# ------------------------------------------------------------- rules that postpone ---


def _mc_retry_after(at: datetime, ctx: CardContext) -> tuple[datetime, str] | None:
    best: tuple[datetime, str] | None = None
    for a in ctx.declines():
        mac = normalize_code("network_advice_code", a.network_advice_code)
        if mac in MC_RETRY_AFTER:
            earliest = a.at + MC_RETRY_AFTER[mac]
            if earliest > at and (best is None or earliest > best[0]):
                best = (
                    earliest,
                    f"Mastercard MAC {mac} (retry after {_span(MC_RETRY_AFTER[mac])})",
                )
    return best


def earliest_under_limit(
    at: datetime,
    times: Sequence[datetime],
    window: timedelta,
    limit_at: Callable[[datetime], int],
    changes: Sequence[datetime] = (),
) -> datetime:
    """Earliest ``t >= at`` where ``count(times in (t - window, ...)) + 1 <= limit_at(t)``.

    Counts only fall and limits only rise as ``t`` grows, so the first candidate
    (when an attempt leaves the window, or when the limit changes) that fits is it.
    """

    def fits(t: datetime) -> bool:
        return sum(1 for x in times if x > t - window) + 1 <= limit_at(t)

    if fits(at):
        return at
    candidates = sorted({x + window for x in times} | set(changes))
    for t in candidates:
        if t > at and fits(t):
            return t
    raise AssertionError("unreachable: every attempt eventually leaves the window")


def visa_limit(at: datetime) -> int:
    """Visa's reattempt limit in force for a reattempt at ``at``."""
    return VISA_LIMIT_FROM_2025_05_19 if at >= VISA_LIMIT_RAISED_AT else VISA_LIMIT


def _visa_limit(at: datetime, ctx: CardContext) -> tuple[datetime, str] | None:
    if not ctx.is_visa():
        return None
    times = [a.at for a in ctx.declines() if a.merchant_initiated]
    t = earliest_under_limit(at, times, VISA_WINDOW, visa_limit, [VISA_LIMIT_RAISED_AT])
    if t == at:
        return None
    return t, f"Visa reattempt limit ({visa_limit(at)} in 30 days on the card)"


def _mc_day_limit(at: datetime, ctx: CardContext) -> tuple[datetime, str] | None:
    if not ctx.is_mastercard():
        return None
    times = [a.at for a in ctx.declines()]
    t = earliest_under_limit(at, times, MC_DAY_WINDOW, lambda _: MC_DAY_LIMIT)
    if t == at:
        return None
    return t, f"Mastercard excessive attempts ({MC_DAY_LIMIT} declines per card in 24 h)"


def _mc_month_limit(at: datetime, ctx: CardContext) -> tuple[datetime, str] | None:
    if not ctx.is_mastercard():
        return None
    times = [
        a.at
        for a in ctx.declines()
        if a.amount == ctx.amount and a.currency.lower() == ctx.currency
    ]
    t = earliest_under_limit(at, times, MC_MONTH_WINDOW, lambda _: MC_MONTH_LIMIT)
    if t == at:
        return None
    return t, (
        f"Mastercard excessive attempts ({MC_MONTH_LIMIT} declines per card and amount in 30 days)"
    )


WAIT_RULES: tuple[Callable[[datetime, CardContext], tuple[datetime, str] | None], ...] = (
    _mc_retry_after,
    _visa_limit,
    _mc_day_limit,
    _mc_month_limit,
)


def evaluate(at: datetime, ctx: CardContext) -> Verdict:
    """Check a proposed retry time: blocked, allowed, or pushed to the earliest legal time."""
    for block in BLOCK_RULES:
        reason = block(at, ctx)
        if reason is not None:
            return Verdict(at=at, blocked_by=reason)
    t = at
    pushed: list[str] = []
    changed = True
    while changed:  # each pass only moves t forward; waits are finite, so it ends
        changed = False
        for wait in WAIT_RULES:
            result = wait(t, ctx)
            if result is not None and result[0] > t:
                t, why = result
                if why not in pushed:
                    pushed.append(why)
                changed = True
    return Verdict(at=t, pushed_by=tuple(pushed))


def guard(
    decision: Decision,
    *,
    history: Sequence[Attempt],
    card_brand: str | None = None,
    card_history: Sequence[Attempt] = (),
    card_updated_at: datetime | None = None,
    deadline: datetime | None = None,
    card_fingerprint: str | None = None,
) -> Decision:
    """Pass a decision through the network rules.

    Returns it unchanged, moved later (past waits and limit windows), or turned into
    "no retry" (WAIT_FOR_CARD until ``deadline``) with the rule as the reason.
    ``card_fingerprint``: the retry uses that card, whose own attempts are counted.
    Decisions that are not retries pass through untouched.
    """
    if decision.kind is not DecisionKind.RETRY or decision.at is None:
        return decision
    ctx = CardContext.build(
        history,
        card_brand=card_brand,
        card_history=card_history,
        card_updated_at=card_updated_at,
        card_fingerprint=card_fingerprint,
    )
    verdict = evaluate(decision.at, ctx)
    if verdict.blocked_by is not None:
        return replace(
            decision,
            kind=DecisionKind.WAIT_FOR_CARD,
            at=deadline,
            reason=f"no retry: {verdict.blocked_by}; waiting for a new card",
            end_action=None,
        )
    if verdict.at == decision.at:
        return decision
    return replace(
        decision,
        at=verdict.at,
        reason=f"{decision.reason}; moved to {verdict.at:%Y-%m-%d %H:%M} UTC by "
        + ", ".join(verdict.pushed_by),
    )
