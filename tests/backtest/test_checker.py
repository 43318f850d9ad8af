"""The independent network-rule checker: one violation per hand-built history, and a
policy that retries every hour sets off every counter."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from dunning.backtest import checker as c
from dunning.backtest.cases import Codes
from dunning.backtest.checker import SimAttempt, check
from dunning.backtest.deciders import every_hour
from dunning.backtest.simulate import run_case
from dunning.backtest.world import State, load_world

from .factories import MONDAY, hand_case

H = timedelta(hours=1)
D = timedelta(days=1)
NSF = Codes("insufficient_funds", "51")
MAC_25 = Codes("insufficient_funds", "51", None, "25")  # Mastercard: retry after 24 hours


def _tries(codes: Codes, gaps: list[timedelta], *, last: Codes | None = None) -> list[SimAttempt]:
    """The original decline at MONDAY, then a merchant retry after each gap."""
    out = [SimAttempt(MONDAY, 0, True, 2900, codes)]
    t = MONDAY
    for gap in gaps:
        t += gap
        out.append(SimAttempt(t, 0, True, 2900, last or codes))
    return out


CASES = [
    ("visa", _tries(Codes("stolen_card", "43"), [D], last=NSF), c.VISA_CATEGORY_1),
    ("visa", _tries(NSF, [D] * 21), c.VISA_30_DAYS),  # the 21st reattempt in 30 days
    ("mastercard", _tries(Codes("do_not_honor", "05", None, "03"), [D], last=NSF), c.MC_NEVER),
    ("mastercard", _tries(MAC_25, [2 * H], last=NSF), c.MC_WAIT),
    ("mastercard", _tries(NSF, [2 * H] * 10), c.MC_24_HOURS),  # the 11th decline in 24 h
    ("mastercard", _tries(NSF, [20 * H] * 35), c.MC_30_DAYS),  # the 36th in 30 days
    ("amex", _tries(Codes("generic_decline", None, "do_not_try_again"), [D], last=NSF),
     c.STRIPE_NEVER),
]  # fmt: skip


@pytest.mark.parametrize(("brand", "attempts", "rule"), CASES, ids=[r for _, _, r in CASES])
def test_each_rule_counts_exactly_one_violation(
    brand: str, attempts: list[SimAttempt], rule: str
) -> None:
    assert check(brand, attempts) == Counter({rule: 1})


def test_one_attempt_fewer_breaks_nothing() -> None:
    for brand, attempts, _ in CASES:
        assert check(brand, attempts[:-1]) == Counter(), brand


def test_a_retry_after_the_mac_wait_is_fine() -> None:
    assert check("mastercard", _tries(MAC_25, [25 * H], last=NSF)) == Counter()


def test_a_new_card_and_the_customer_own_payment_are_no_reattempts() -> None:
    stolen = Codes("stolen_card", "43")
    attempts = [
        SimAttempt(MONDAY, 0, True, 2900, stolen),
        SimAttempt(MONDAY + H, 0, False, 2900, stolen),  # the customer, on the page
        SimAttempt(MONDAY + D, 1, True, 2900, NSF),  # the card updater's new card
        SimAttempt(MONDAY + 2 * D, 1, True, 2900, None),
    ]
    assert check("visa", attempts) == Counter()


def test_visa_limit_was_15_before_2025_05_19() -> None:
    early = [
        SimAttempt(a.at - timedelta(days=400), 0, True, 2900, a.codes)
        for a in _tries(NSF, [D] * 16)
    ]
    assert early[0].at.year == 2025 and early[-1].at.month < 5
    assert check("visa", early) == Counter({c.VISA_30_DAYS: 1})


def test_a_policy_retrying_every_hour_sets_off_every_counter() -> None:
    world = load_world()
    cases = [
        hand_case(Codes("stolen_card", "43"), brand="visa"),
        hand_case(NSF, state=State.NSF, brand="visa"),
        hand_case(Codes("do_not_honor", "05", None, "03"), brand="mastercard"),
        hand_case(
            Codes("insufficient_funds", "51", None, "25"), state=State.NSF, brand="mastercard"
        ),
        hand_case(Codes("generic_decline", None, "do_not_try_again"), brand="amex"),
    ]
    found: Counter[str] = Counter()
    for case in cases:
        result = run_case(world, case, every_hour())
        assert result.retries == 30 * 24
        found.update(result.violations)
    assert set(found) == set(c.RULES), found
    assert all(found[rule] > 0 for rule in c.RULES)
