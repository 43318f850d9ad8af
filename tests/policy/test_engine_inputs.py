"""The engine inputs the planner and ops pass: the processor's own retry and "retry now"."""

from __future__ import annotations

from datetime import timedelta

from dunning.policy.declines import DeclineClass
from dunning.policy.engine import AFTER_PROCESSOR_RETRY, DecisionKind, decide
from dunning.policy.preview import simulate

from .factories import failed, make_policy, utc

K = DecisionKind
MON_8 = "2025-06-02T08:00"  # a Monday; a processing error then retries at 14:00 UTC


def test_processor_retry_moves_ours_after_it_with_a_reason() -> None:
    stripe = utc("2025-06-03T10:00")
    decision = decide(
        make_policy(),
        [failed(MON_8, "processing_error")],
        now=utc(MON_8),
        time_zone="UTC",
        processor_retry_at=stripe,
    )
    assert decision.kind is K.RETRY
    assert decision.at == stripe + AFTER_PROCESSOR_RETRY
    assert "after the processor's own retry at 2025-06-03 10:00 UTC" in decision.reason


def test_processor_retry_time_still_goes_through_the_retry_window() -> None:
    stripe = utc("2025-06-06T17:30")  # Friday; +1 h is 18:30, after the window
    decision = decide(
        make_policy(),
        [failed(MON_8, "processing_error")],
        now=utc(MON_8),
        time_zone="UTC",
        processor_retry_at=stripe,
    )
    assert decision.at == utc("2025-06-09T09:00")  # next Monday morning


def test_an_earlier_processor_retry_changes_nothing() -> None:
    history = [failed(MON_8, "processing_error")]
    plain = decide(make_policy(), history, now=utc(MON_8), time_zone="UTC")
    early = decide(
        make_policy(),
        history,
        now=utc(MON_8),
        time_zone="UTC",
        processor_retry_at=utc("2025-06-02T09:00"),
    )
    assert early == plain


def test_processor_retry_and_network_wait_both_hold() -> None:
    history = [
        failed(MON_8, "insufficient_funds", network_advice_code="27", card_brand="mastercard")
    ]
    decision = decide(
        make_policy(),
        history,
        now=utc(MON_8),
        time_zone="UTC",
        processor_retry_at=utc("2025-06-03T10:00"),
    )
    assert decision.at is not None and decision.at >= utc(MON_8) + timedelta(days=4)


def test_processor_retry_after_the_deadline_waits() -> None:
    decision = decide(
        make_policy(),
        [failed(MON_8, "processing_error")],
        now=utc(MON_8),
        time_zone="UTC",
        processor_retry_at=utc("2025-07-30T10:00"),
    )
    assert decision.kind is K.WAIT_FOR_CARD
    assert "processor's own retry" in decision.reason


def test_preview_shows_the_processor_retry() -> None:
    stripe = utc("2025-06-04T10:00")
    decisions = simulate(
        make_policy(), failed(MON_8, "processing_error"), time_zone="UTC", processor_retry_at=stripe
    )
    assert decisions[0].at == stripe + AFTER_PROCESSOR_RETRY
    assert "processor's own retry" in decisions[0].reason


def test_retry_now_skips_timing_and_limits() -> None:
    saturday_night = utc("2025-06-07T03:00")
    history = [failed("2025-06-06T10:00", "insufficient_funds")]
    decision = decide(make_policy(), history, now=saturday_night, time_zone="UTC", retry_now=True)
    assert decision.kind is K.RETRY and decision.at == saturday_night
    assert decision.decline_class is DeclineClass.INSUFFICIENT_FUNDS
    assert decision.attempt_number == 2
    assert "asked by ops" in decision.reason


def test_retry_now_ignores_the_class_action_and_the_attempt_and_day_limits() -> None:
    history = [failed(f"2025-05-{d:02d}T10:00", "stolen_card") for d in range(1, 9)]
    late = utc("2025-06-30T12:00")  # past max_days and max_attempts
    decision = decide(make_policy(), history, now=late, time_zone="UTC", retry_now=True)
    assert decision.kind is K.RETRY and decision.at == late
    assert decision.decline_class is DeclineClass.HARD
    assert decision.attempt_number == 9


def test_retry_now_never_breaks_a_network_block() -> None:
    history = [failed(MON_8, "stolen_card", network_decline_code="43")]
    decision = decide(make_policy(), history, now=utc(MON_8), time_zone="UTC", retry_now=True)
    assert decision.kind is K.WAIT_FOR_CARD
    assert "Visa category-1" in decision.reason


def test_retry_now_is_postponed_by_a_network_wait() -> None:
    history = [
        failed(MON_8, "insufficient_funds", network_advice_code="26", card_brand="mastercard")
    ]
    decision = decide(
        make_policy(), history, now=utc("2025-06-02T09:00"), time_zone="UTC", retry_now=True
    )
    assert decision.kind is K.RETRY
    assert decision.at == utc(MON_8) + timedelta(days=2)
    assert "MAC 26" in decision.reason
