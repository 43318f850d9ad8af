"""An independent count of card-network rule violations in a simulated case.

Why written apart from ``dunning.policy.network_rules``: the engine's guard is what is
being tested, so the backtest must not reuse it. This module reads the rules from their
text and counts (never blocks) every attempt that breaks one; a bug in the guard then
shows up as a non-zero count instead of hiding itself.

The rules, per card credentials (a new card starts afresh):
- Visa: no reattempt after a category-1 response code (04, 07, 12, 14, 41, 43, 46, 57,
  R0, R1, R3; 15 before 2025-04-12); at most 15 merchant-initiated reattempts in 30 days,
  20 from 2025-05-19 (Visa excessive reattempts rule).
- Mastercard: never retry after merchant advice code 03 or 21; not before the wait of
  MAC 24-30 (1 h, 24 h, 2, 4, 6, 8, 10 days); at most 10 declines in 24 hours per card
  and 35 per card and amount in 30 days (Transaction Processing Excellence).
- Stripe: never retry after ``advice_code = do_not_try_again``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from dunning.backtest.cases import Codes

VISA_CATEGORY_1 = "visa_category_1"
VISA_30_DAYS = "visa_30_day_limit"
MC_NEVER = "mastercard_do_not_retry"
MC_WAIT = "mastercard_retry_wait"
MC_24_HOURS = "mastercard_24_hour_limit"
MC_30_DAYS = "mastercard_30_day_limit"
STRIPE_NEVER = "stripe_do_not_try_again"
RULES = (VISA_CATEGORY_1, VISA_30_DAYS, MC_NEVER, MC_WAIT, MC_24_HOURS, MC_30_DAYS, STRIPE_NEVER)

_VISA_NEVER = frozenset({"04", "07", "12", "14", "41", "43", "46", "57", "R0", "R1", "R3"})
_CODE_15_UNTIL = datetime(2025, 4, 12, tzinfo=UTC)
_VISA_20_FROM = datetime(2025, 5, 19, tzinfo=UTC)
_MAC_HOURS = {"24": 1, "25": 24, "26": 48, "27": 96, "28": 144, "29": 192, "30": 240}
_DAY = timedelta(hours=24)
_MONTH = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class SimAttempt:
    """One charge attempt as the world saw it."""

    at: datetime
    card: int  # credentials: 0 the original card, then each replacement
    merchant: bool  # merchant-initiated (the customer paying on the page is not)
    amount: int
    codes: Codes | None  # None: approved

    @property
    def declined(self) -> bool:
        return self.codes is not None


def _code(value: str | None) -> str:
    text = (value or "").strip().upper()
    return text.zfill(2) if text.isdigit() else text


@lru_cache(maxsize=1024)
def _reading(codes: Codes) -> tuple[str, str, bool]:
    """(network decline code, MAC, Stripe do_not_try_again) of a decline, normalised."""
    advice = (codes.advice_code or "").strip().lower() == "do_not_try_again"
    return _code(codes.network_decline_code), _code(codes.network_advice_code), advice


@dataclass
class _Card:
    """What the networks remember about one set of credentials within a case."""

    uses: int = 0
    never_visa: list[tuple[str, datetime]] = field(default_factory=list)
    never_mc: bool = False
    never_stripe: bool = False
    wait_until: datetime | None = None
    declines: list[tuple[datetime, int]] = field(default_factory=list)  # (time, amount)
    reattempts: list[datetime] = field(default_factory=list)


def check(brand: str | None, attempts: Sequence[SimAttempt]) -> Counter[str]:
    """Violations by rule among the merchant-initiated reattempts of one case."""
    found: Counter[str] = Counter()
    if len(attempts) < 2:
        return found
    brand = (brand or "").lower()
    visa, mastercard = brand == "visa", brand == "mastercard"
    if not (visa or mastercard) and not any(a.codes and _reading(a.codes)[2] for a in attempts):
        return found  # only Stripe's do_not_try_again applies to other brands
    cards: dict[int, _Card] = {}
    for a in attempts:
        card = cards.setdefault(a.card, _Card())
        t = a.at
        if a.merchant and card.declines:  # a reattempt: judge it against what came before
            if card.never_stripe:
                found[STRIPE_NEVER] += 1
            if visa:
                if any(code != "15" or t < _CODE_15_UNTIL for code, _ in card.never_visa):
                    found[VISA_CATEGORY_1] += 1
                recent = sum(1 for x in card.reattempts if x > t - _MONTH)
                if recent + 1 > (20 if t >= _VISA_20_FROM else 15):
                    found[VISA_30_DAYS] += 1
            if mastercard:
                if card.never_mc:
                    found[MC_NEVER] += 1
                if card.wait_until is not None and t < card.wait_until:
                    found[MC_WAIT] += 1
                if sum(1 for x, _ in card.declines if x > t - _DAY) >= 10:
                    found[MC_24_HOURS] += 1
                month = t - _MONTH
                if sum(1 for x, amount in card.declines if x > month and amount == a.amount) >= 35:
                    found[MC_30_DAYS] += 1
        if a.merchant and card.uses > 0:
            card.reattempts.append(t)
        card.uses += 1
        if a.codes is None:
            continue
        network, mac, never_stripe = _reading(a.codes)
        card.declines.append((t, a.amount))
        card.never_stripe |= never_stripe
        if network in _VISA_NEVER or network == "15":
            card.never_visa.append((network, t))
        card.never_mc |= mac in ("03", "21")
        if mac in _MAC_HOURS:
            until = t + timedelta(hours=_MAC_HOURS[mac])
            card.wait_until = until if card.wait_until is None else max(card.wait_until, until)
    return found
