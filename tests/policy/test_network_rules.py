"""Each card-network rule on its own, through ``guard``."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from dunning.policy.declines import DeclineClass
from dunning.policy.network_rules import guard
from dunning.policy.records import Attempt, Decision, DecisionKind

from .factories import failed, utc

DEADLINE = utc("2025-12-31T00:00")


def propose(at: str | datetime) -> Decision:
    when = utc(at) if isinstance(at, str) else at
    return Decision(DecisionKind.RETRY, when, "policy says so", DeclineClass.TEMPORARY, None, 2)


def check(history: list[Attempt], at: str | datetime, **kwargs: Any) -> Decision:
    return guard(propose(at), history=history, deadline=DEADLINE, **kwargs)


def assert_blocked(decision: Decision, words: str) -> None:
    assert decision.kind is DecisionKind.WAIT_FOR_CARD
    assert decision.at == DEADLINE
    assert words in decision.reason


def assert_allowed(decision: Decision, at: str | datetime) -> None:
    assert decision.kind is DecisionKind.RETRY
    assert decision.at == (utc(at) if isinstance(at, str) else at), decision.reason


def daily(start: str, n: int, **fields: Any) -> list[Attempt]:
    """``n`` declines one day apart, starting at ``start``."""
    return [failed(utc(start) + timedelta(days=i), "generic_decline", **fields) for i in range(n)]


# --- Visa category 1 ----------------------------------------------------------------


@pytest.mark.parametrize(
    "code", ["04", "07", "12", "14", "41", "43", "46", "57", "R0", "R1", "R3", "r1", "4"]
)
def test_visa_category_1_is_never_retried(code: str) -> None:
    history = [failed("2025-06-02T12:00", None, network_decline_code=code)]
    assert_blocked(check(history, "2025-06-10T12:00"), "Visa category-1")


@pytest.mark.parametrize("code", ["05", "51", "54", "59", "91", "N7"])
def test_visa_other_categories_may_be_retried(code: str) -> None:
    history = [failed("2025-06-02T12:00", None, network_decline_code=code)]
    assert_allowed(check(history, "2025-06-10T12:00"), "2025-06-10T12:00")


def test_visa_code_15_is_category_1_only_before_2025_04_12() -> None:
    history = [failed("2025-04-10T12:00", None, network_decline_code="15")]
    assert_blocked(check(history, "2025-04-11T23:59"), "Visa category-1 response code 15")
    assert_allowed(check(history, "2025-04-12T00:00"), "2025-04-12T00:00")


def test_visa_category_1_is_lifted_by_a_new_card() -> None:
    history = [failed("2025-06-02T12:00", None, network_decline_code="43")]
    decision = check(history, "2025-06-03T12:00", card_updated_at=utc("2025-06-02T13:00"))
    assert_allowed(decision, "2025-06-03T12:00")


def test_visa_category_1_from_another_case_on_the_card_blocks() -> None:
    other = [failed("2025-05-02T12:00", None, network_decline_code="46")]
    decision = check([failed("2025-06-02T12:00", "processing_error")], "2025-06-03T12:00",
                     card_history=other)  # fmt: skip
    assert_blocked(decision, "Visa category-1")


@pytest.mark.parametrize(
    ("brand", "blocked"), [("visa", True), (None, True), ("mastercard", False)]
)
def test_visa_category_1_applies_to_visa_and_unknown_brands(
    brand: str | None, blocked: bool
) -> None:
    history = [failed("2025-06-02T12:00", None, network_decline_code="43", card_brand=brand)]
    decision = check(history, "2025-06-03T12:00")
    assert (decision.kind is DecisionKind.WAIT_FOR_CARD) is blocked


# --- Visa reattempt limit -----------------------------------------------------------


def test_visa_14_declines_in_30_days_leave_room_for_one_more() -> None:
    assert_allowed(check(daily("2025-04-16T12:00", 14), "2025-05-01T12:00"), "2025-05-01T12:00")


def test_visa_15_declines_in_30_days_wait_for_the_oldest_to_leave() -> None:
    decision = check(daily("2025-04-16T12:00", 15), "2025-05-01T12:00")
    assert_allowed(decision, "2025-05-16T12:00")
    assert "Visa reattempt limit (15 in 30 days" in decision.reason


def test_visa_limit_counts_only_merchant_initiated_declines() -> None:
    history = daily("2025-04-16T12:00", 15)
    history[3] = replace(history[3], merchant_initiated=False)
    assert_allowed(check(history, "2025-05-01T12:00"), "2025-05-01T12:00")
    history[3] = replace(history[3], merchant_initiated=True, succeeded=True)
    assert_allowed(check(history, "2025-05-01T12:00"), "2025-05-01T12:00")


def test_visa_limit_is_20_from_2025_05_19() -> None:
    assert_allowed(check(daily("2025-06-01T12:00", 19), "2025-06-20T12:00"), "2025-06-20T12:00")
    decision = check(daily("2025-06-01T12:00", 20), "2025-06-21T12:00")
    assert_allowed(decision, "2025-07-01T12:00")
    assert "(20 in 30 days" in decision.reason


def test_visa_limit_rises_on_2025_05_19() -> None:
    # 16 declines: over the old limit of 15 on 05-18, within the new limit of 20 on 05-19.
    assert_allowed(check(daily("2025-05-02T12:00", 16), "2025-05-18T12:00"), "2025-05-19T00:00")


def test_visa_limit_counts_other_cases_on_the_card() -> None:
    case = [failed("2025-04-30T12:00", "processing_error")]
    decision = check(case, "2025-05-01T12:00", card_history=daily("2025-04-16T12:00", 14))
    assert_allowed(decision, "2025-05-16T12:00")


def test_visa_limit_does_not_apply_to_mastercard() -> None:
    history = daily("2025-04-16T12:00", 15, card_brand="mastercard")
    assert_allowed(check(history, "2025-05-01T12:00"), "2025-05-01T12:00")


# --- Mastercard merchant advice codes ------------------------------------------------


@pytest.mark.parametrize("mac", ["03", "21", "3"])
@pytest.mark.parametrize("brand", ["mastercard", "visa", "amex"])
def test_mastercard_mac_03_and_21_are_never_retried(mac: str, brand: str) -> None:
    history = [failed("2025-06-02T12:00", None, network_advice_code=mac, card_brand=brand)]
    assert_blocked(check(history, "2025-06-20T12:00"), "merchant advice code")


def test_mastercard_mac_03_is_lifted_by_a_new_card() -> None:
    history = [failed("2025-06-02T12:00", None, network_advice_code="03", card_brand="mastercard")]
    decision = check(history, "2025-06-03T12:00", card_updated_at=utc("2025-06-03T08:00"))
    assert_allowed(decision, "2025-06-03T12:00")


@pytest.mark.parametrize(
    ("mac", "wait"),
    [
        ("24", timedelta(hours=1)),
        ("25", timedelta(hours=24)),
        ("26", timedelta(days=2)),
        ("27", timedelta(days=4)),
        ("28", timedelta(days=6)),
        ("29", timedelta(days=8)),
        ("30", timedelta(days=10)),
    ],
)
def test_mastercard_mac_24_to_30_set_a_minimum_wait(mac: str, wait: timedelta) -> None:
    declined = utc("2025-06-02T12:00")
    history = [failed(declined, None, network_advice_code=mac, card_brand="mastercard")]
    early = check(history, declined + timedelta(minutes=1))
    assert_allowed(early, declined + wait)
    assert f"MAC {mac}" in early.reason
    later = declined + wait + timedelta(hours=1)
    assert_allowed(check(history, later), later)


def test_mastercard_wait_counts_from_the_latest_decline() -> None:
    history = [
        failed("2025-06-01T12:00", None, network_advice_code="30", card_brand="mastercard"),
        failed("2025-06-02T12:00", None, network_advice_code="24", card_brand="mastercard"),
    ]
    assert_allowed(check(history, "2025-06-02T14:00"), "2025-06-11T12:00")


# --- Mastercard excessive attempts ---------------------------------------------------


def hourly(start: str, n: int, **fields: Any) -> list[Attempt]:
    return [failed(utc(start) + timedelta(hours=i), "generic_decline", **fields) for i in range(n)]


def test_mastercard_9_declines_in_24h_leave_room_for_one_more() -> None:
    history = hourly("2025-06-02T00:00", 9, card_brand="mastercard")
    assert_allowed(check(history, "2025-06-02T12:00"), "2025-06-02T12:00")


def test_mastercard_10_declines_in_24h_wait() -> None:
    history = hourly("2025-06-02T00:00", 10, card_brand="mastercard")
    history[0] = replace(history[0], merchant_initiated=False)  # customer attempts count too
    decision = check(history, "2025-06-02T12:00")
    assert_allowed(decision, "2025-06-03T00:00")
    assert "10 declines per card in 24 h" in decision.reason


def test_mastercard_24h_limit_does_not_apply_to_visa() -> None:
    history = hourly("2025-06-02T00:00", 10)
    assert_allowed(check(history, "2025-06-02T12:00"), "2025-06-02T12:00")


def every_20h(n: int, **fields: Any) -> list[Attempt]:
    start = utc("2025-05-04T00:00")
    return [failed(start + timedelta(hours=20 * i), "generic_decline", **fields) for i in range(n)]


def test_mastercard_34_declines_same_amount_in_30_days_leave_room() -> None:
    history = every_20h(34, card_brand="mastercard")
    assert_allowed(check(history, "2025-06-02T12:00"), "2025-06-02T12:00")


def test_mastercard_35_declines_same_amount_in_30_days_wait() -> None:
    decision = check(every_20h(35, card_brand="mastercard"), "2025-06-02T12:00")
    assert_allowed(decision, "2025-06-03T00:00")
    assert "35 declines per card and amount" in decision.reason


@pytest.mark.parametrize("other", [{"amount": 999}, {"currency": "eur"}])
def test_mastercard_30_day_limit_is_per_amount(other: dict[str, Any]) -> None:
    case = [failed("2025-06-02T10:00", "processing_error", card_brand="mastercard")]
    card_history = every_20h(35, card_brand="mastercard", **other)
    assert_allowed(check(case, "2025-06-02T12:00", card_history=card_history), "2025-06-02T12:00")


# --- Stripe advice_code ---------------------------------------------------------------


@pytest.mark.parametrize("brand", ["visa", "mastercard", "amex", "discover", None])
@pytest.mark.parametrize("advice", ["do_not_try_again", "DO_NOT_TRY_AGAIN"])
def test_stripe_do_not_try_again_is_never_retried(brand: str | None, advice: str) -> None:
    history = [
        failed("2025-06-02T12:00", "insufficient_funds", advice_code=advice, card_brand=brand)
    ]
    assert_blocked(check(history, "2025-06-20T12:00"), "do_not_try_again")


def test_stripe_do_not_try_again_is_lifted_by_a_new_card() -> None:
    history = [failed("2025-06-02T12:00", None, advice_code="do_not_try_again")]
    decision = check(history, "2025-06-03T12:00", card_updated_at=utc("2025-06-02T18:00"))
    assert_allowed(decision, "2025-06-03T12:00")


@pytest.mark.parametrize("advice", ["try_again_later", "confirm_card_data"])
def test_other_stripe_advice_does_not_block(advice: str) -> None:
    history = [failed("2025-06-02T12:00", None, advice_code=advice)]
    assert_allowed(check(history, "2025-06-03T12:00"), "2025-06-03T12:00")


# --- the guard itself -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", [DecisionKind.WAIT_FOR_CARD, DecisionKind.CUSTOMER_ACTION, DecisionKind.GIVE_UP]
)
def test_decisions_other_than_retry_pass_through(kind: DecisionKind) -> None:
    decision = replace(propose("2025-06-03T12:00"), kind=kind)
    history = [failed("2025-06-02T12:00", None, network_decline_code="43")]
    assert guard(decision, history=history, deadline=DEADLINE) is decision


def test_allowed_decision_is_returned_unchanged() -> None:
    decision = propose("2025-06-03T12:00")
    assert guard(decision, history=[failed("2025-06-02T12:00", "processing_error")]) is decision
