"""Table-driven tests of ``decide`` with fixed ``now``: classes, brands, calendars, limits."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pytest

from dunning.policy.declines import DeclineClass
from dunning.policy.engine import Attempt, Decision, DecisionKind, decide
from dunning.policy.models import EndAction

from .factories import failed, make_policy, utc

K = DecisionKind
C = DeclineClass
MON = "2025-06-02T12:00"  # a Monday


def _dense(brand: str | None) -> list[Attempt]:
    """Ten declines on the card between 00:00 and 09:00 on Monday (other cases)."""
    return [
        failed(f"2025-06-02T{h:02d}:00", "generic_decline", card_brand=brand) for h in range(10)
    ]


@dataclass(frozen=True)
class Row:
    id: str
    history: list[Attempt]
    now: str
    kind: DecisionKind
    at: str | None
    cls: DeclineClass
    tz: str = "UTC"
    policy: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


ROWS = [
    # --- decline classes -------------------------------------------------------------
    Row("temporary", [failed("2025-06-02T08:00", "processing_error")], "2025-06-02T08:00",
        K.RETRY, "2025-06-02T14:00", C.TEMPORARY, reason="at least 6 h"),
    Row("temporary-after-hours-next-morning", [failed(MON, "processing_error")], MON,
        K.RETRY, "2025-06-03T09:00", C.TEMPORARY),
    Row("temporary-second-in-a-row-uses-second-backoff",
        [failed("2025-05-30T10:00", "processing_error"),
         failed("2025-06-02T08:00", "try_again_later")], "2025-06-02T08:00",
        K.RETRY, "2025-06-03T09:00", C.TEMPORARY, reason="retry 2 of this class"),
    Row("do-not-honor-is-unknown", [failed("2025-06-02T08:00", "do_not_honor")],
        "2025-06-02T08:00", K.RETRY, "2025-06-03T09:00", C.UNKNOWN),
    Row("do-not-honor-repeated-stays-unknown",
        [failed("2025-05-30T10:00", "do_not_honor", network_decline_code="05"),
         failed(MON, "do_not_honor", network_decline_code="05")], MON,
        K.RETRY, "2025-06-03T12:00", C.UNKNOWN, reason="retry 2 of this class"),
    Row("generic-decline-repeated-is-unknown",
        [failed("2025-05-30T10:00", "generic_decline"), failed(MON, "generic_decline")], MON,
        K.RETRY, "2025-06-03T12:00", C.UNKNOWN),
    Row("unknown-code", [failed(MON, "brand_new_code")], MON,
        K.RETRY, "2025-06-03T12:00", C.UNKNOWN),
    Row("hard-waits-for-card", [failed(MON, "stolen_card")], MON,
        K.WAIT_FOR_CARD, "2025-06-23T12:00", C.HARD, reason="no blind retry"),
    Row("card-data-waits-for-card", [failed(MON, "expired_card")], MON,
        K.WAIT_FOR_CARD, "2025-06-23T12:00", C.CARD_DATA),
    Row("authentication-needs-customer", [failed(MON, "authentication_required")], MON,
        K.CUSTOMER_ACTION, "2025-06-23T12:00", C.AUTHENTICATION_REQUIRED),
    Row("advice-confirm-card-data", [failed(MON, "generic_decline",
        advice_code="confirm_card_data")], MON, K.WAIT_FOR_CARD, "2025-06-23T12:00", C.CARD_DATA),
    Row("policy-gives-up-on-class", [failed(MON, "brand_new_code")], MON,
        K.GIVE_UP, MON, C.UNKNOWN,
        policy={"classes": {"unknown": {"action": "give_up", "backoff_hours": None}}}),
    # --- new card ----------------------------------------------------------------------
    Row("hard-with-new-card-retries-once",
        [failed(MON, "stolen_card", network_decline_code="43")], "2025-06-02T14:00",
        K.RETRY, "2025-06-02T14:00", C.HARD, kwargs={"card_updated_at": utc("2025-06-02T13:30")},
        reason="new card"),
    Row("card-data-with-new-card-respects-spacing", [failed(MON, "expired_card")],
        "2025-06-02T12:10", K.RETRY, "2025-06-02T13:00", C.CARD_DATA,
        kwargs={"card_updated_at": utc("2025-06-02T12:05")}),
    Row("card-update-before-last-failure-does-not-count", [failed(MON, "stolen_card")], MON,
        K.WAIT_FOR_CARD, "2025-06-23T12:00", C.HARD,
        kwargs={"card_updated_at": utc("2025-06-02T11:00")}),
    # --- time zones --------------------------------------------------------------------
    Row("new-york", [failed(MON, "processing_error")], MON,
        K.RETRY, "2025-06-02T18:00", C.TEMPORARY, tz="America/New_York", reason="14:00"),
    Row("shanghai", [failed(MON, "processing_error")], MON,
        K.RETRY, "2025-06-03T01:00", C.TEMPORARY, tz="Asia/Shanghai"),
    Row("berlin", [failed(MON, "processing_error")], MON,
        K.RETRY, "2025-06-03T07:00", C.TEMPORARY, tz="Europe/Berlin"),
    Row("bad-zone-falls-back-to-account", [failed(MON, "processing_error")], MON,
        K.RETRY, "2025-06-03T01:00", C.TEMPORARY, tz="Not/AZone",
        kwargs={"account_time_zone": "Asia/Shanghai"}),
    Row("empty-zone-falls-back-to-account", [failed(MON, "processing_error")], MON,
        K.RETRY, "2025-06-03T07:00", C.TEMPORARY, tz="",
        kwargs={"account_time_zone": "Europe/Berlin"}),
    Row("both-zones-bad-use-utc", [failed(MON, "processing_error")], MON,
        K.RETRY, "2025-06-03T09:00", C.TEMPORARY, tz="nope", kwargs={"account_time_zone": ""}),
    # --- weekends and holidays ----------------------------------------------------------
    Row("weekend-skipped", [failed("2025-06-06T14:00", "processing_error")], "2025-06-06T14:00",
        K.RETRY, "2025-06-09T09:00", C.TEMPORARY),
    Row("weekend-allowed", [failed("2025-06-06T14:00", "processing_error")], "2025-06-06T14:00",
        K.RETRY, "2025-06-07T09:00", C.TEMPORARY, policy={"timing": {"skip_weekends": False}}),
    Row("us-holiday-skipped", [failed("2025-07-03T14:00", "brand_new_code")], "2025-07-03T14:00",
        K.RETRY, "2025-07-07T13:00", C.UNKNOWN, tz="America/New_York",
        policy={"timing": {"holiday_country": "US"}}),
    Row("no-holiday-calendar", [failed("2025-07-03T14:00", "brand_new_code")],
        "2025-07-03T14:00", K.RETRY, "2025-07-04T14:00", C.UNKNOWN, tz="America/New_York"),
    Row("de-holiday-after-weekend", [failed("2025-06-06T10:00", "brand_new_code")],
        "2025-06-06T10:00", K.RETRY, "2025-06-10T07:00", C.UNKNOWN, tz="Europe/Berlin",
        policy={"timing": {"holiday_country": "de"}}),
    # --- paydays ------------------------------------------------------------------------
    Row("payday-next-friday", [failed(MON, "insufficient_funds")], MON,
        K.RETRY, "2025-06-06T09:00", C.INSUFFICIENT_FUNDS, reason="next payday"),
    Row("payday-15th-on-sunday-moves-to-monday", [failed(MON, "insufficient_funds")], MON,
        K.RETRY, "2025-06-16T09:00", C.INSUFFICIENT_FUNDS, policy={"timing": {"paydays": [15]}}),
    Row("payday-last-business-day", [failed("2025-05-20T12:00", "insufficient_funds")],
        "2025-05-20T12:00", K.RETRY, "2025-05-30T09:00", C.INSUFFICIENT_FUNDS,
        policy={"timing": {"paydays": ["last_business_day"]}}),
    Row("payday-today-inside-window", [failed(MON, "insufficient_funds")], MON,
        K.RETRY, "2025-06-02T13:00", C.INSUFFICIENT_FUNDS,
        policy={"timing": {"paydays": ["monday"]}}),
    Row("payday-with-minimum-wait", [failed(MON, "insufficient_funds")], MON,
        K.RETRY, "2025-06-13T09:00", C.INSUFFICIENT_FUNDS,
        policy={"classes": {"insufficient_funds": {"backoff_hours": [120]}}}),
    Row("payday-new-york-network-51", [failed(MON, None, network_decline_code="51")], MON,
        K.RETRY, "2025-06-06T13:00", C.INSUFFICIENT_FUNDS, tz="America/New_York"),
    # --- spacing and now -----------------------------------------------------------------
    Row("min-spacing-beats-backoff", [failed("2025-06-02T08:00", "processing_error")],
        "2025-06-02T08:00", K.RETRY, "2025-06-03T14:00", C.TEMPORARY,
        policy={"timing": {"min_spacing_hours": 30}}),
    Row("never-in-the-past", [failed("2025-06-01T10:00", "processing_error")],
        "2025-06-02T12:30:20", K.RETRY, "2025-06-02T12:31", C.TEMPORARY),
    # --- limits ----------------------------------------------------------------------------
    Row("max-attempts-waits-for-a-new-card",
        [failed(f"2025-06-02T0{h}:00", "processing_error") for h in range(8)], MON,
        K.WAIT_FOR_CARD, "2025-06-23T00:00", C.TEMPORARY, reason="no more retries of this card"),
    Row("max-attempts-new-card-still-retried",
        [failed(f"2025-06-02T0{h}:00", "processing_error") for h in range(8)], MON,
        K.RETRY, MON, C.TEMPORARY, kwargs={"card_updated_at": utc("2025-06-02T11:00")},
        reason="new card"),
    # --- the never-retry rules bind the card that got them -----------------------------
    Row("customer-card-failed-once-is-retried-later",
        [failed("2025-05-30T10:00", "stolen_card", network_decline_code="43"),
         failed(MON, "generic_decline", card_fingerprint="fp_2", merchant_initiated=False)],
        MON, K.RETRY, "2025-06-03T12:00", C.UNKNOWN),
    Row("same-card-stays-blocked",
        [failed("2025-05-30T10:00", "stolen_card", network_decline_code="43"),
         failed(MON, "generic_decline")], MON, K.WAIT_FOR_CARD, "2025-06-20T10:00", C.UNKNOWN,
        reason="Visa category-1"),
    Row("max-days-gives-up",
        [failed("2025-05-10T12:00", "processing_error"), failed(MON, "processing_error")], MON,
        K.GIVE_UP, MON, C.TEMPORARY, reason="21 days"),
    Row("next-slot-after-deadline-waits",
        [failed("2025-05-13T12:00", "brand_new_code"), failed("2025-06-02T13:00", "x")],
        "2025-06-02T13:00", K.WAIT_FOR_CARD, "2025-06-03T12:00", C.UNKNOWN,
        reason="after the case deadline"),
    # --- brands and network rules ----------------------------------------------------------
    Row("mastercard-mac-27-waits-4-days",
        [failed(MON, "processing_error", network_advice_code="27", card_brand="mastercard")],
        MON, K.RETRY, "2025-06-06T12:00", C.INSUFFICIENT_FUNDS,
        reason="moved later by Mastercard MAC 27 (retry after 4 days)"),
    Row("amex-mac-27-honoured-too",
        [failed(MON, "processing_error", network_advice_code="27", card_brand="amex")],
        MON, K.RETRY, "2025-06-06T12:00", C.INSUFFICIENT_FUNDS),
    Row("mastercard-10-declines-in-24h",
        [failed("2025-06-02T10:00", "processing_error", card_brand="mastercard")],
        "2025-06-02T10:00", K.RETRY, "2025-06-03T09:00", C.TEMPORARY,
        kwargs={"card_history": _dense("mastercard")}),
    Row("visa-not-bound-by-mastercard-24h-limit",
        [failed("2025-06-02T10:00", "processing_error")], "2025-06-02T10:00",
        K.RETRY, "2025-06-02T16:00", C.TEMPORARY, kwargs={"card_history": _dense("visa")}),
    Row("amex-not-bound-by-network-counts",
        [failed("2025-06-02T10:00", "processing_error", card_brand="amex")], "2025-06-02T10:00",
        K.RETRY, "2025-06-02T16:00", C.TEMPORARY, kwargs={"card_history": _dense("amex")}),
    Row("unknown-brand-gets-mastercard-limits",
        [failed("2025-06-02T10:00", "processing_error", card_brand=None)], "2025-06-02T10:00",
        K.RETRY, "2025-06-03T09:00", C.TEMPORARY, kwargs={"card_history": _dense(None)}),
    Row("card-brand-argument-wins",
        [failed("2025-06-02T10:00", "processing_error", card_brand=None)], "2025-06-02T10:00",
        K.RETRY, "2025-06-02T16:00", C.TEMPORARY,
        kwargs={"card_history": _dense(None), "card_brand": "amex"}),
    Row("visa-category-1-on-the-card-blocks",
        [failed(MON, "processing_error")], MON, K.WAIT_FOR_CARD, "2025-06-23T12:00",
        C.TEMPORARY, kwargs={"card_history": [failed("2025-05-20T12:00", None,
                                                     network_decline_code="43")]},
        reason="Visa category-1"),
    Row("category-1-code-ignored-on-mastercard",
        [failed(MON, "processing_error", card_brand="mastercard")], MON,
        K.RETRY, "2025-06-03T09:00", C.TEMPORARY,
        kwargs={"card_history": [failed("2025-05-20T12:00", None, network_decline_code="43",
                                        card_brand="mastercard")]}),
    Row("mastercard-mac-21-on-the-card-blocks",
        [failed(MON, "processing_error", card_brand="mastercard")], MON,
        K.WAIT_FOR_CARD, "2025-06-23T12:00", C.TEMPORARY,
        kwargs={"card_history": [failed("2025-05-20T12:00", None, network_advice_code="21",
                                        card_brand="mastercard")]}, reason="advice code 21"),
    Row("amex-do-not-try-again-on-the-card-blocks",
        [failed(MON, "processing_error", card_brand="amex")], MON,
        K.WAIT_FOR_CARD, "2025-06-23T12:00", C.TEMPORARY,
        kwargs={"card_history": [failed("2025-05-20T12:00", None, advice_code="do_not_try_again",
                                        card_brand="amex")]}, reason="do_not_try_again"),
]  # fmt: skip


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_decide_table(row: Row) -> None:
    policy = make_policy(row.policy)
    decision = decide(policy, row.history, now=utc(row.now), time_zone=row.tz, **row.kwargs)

    assert decision.kind is row.kind, decision.reason
    assert decision.at == (utc(row.at) if row.at else None), decision.reason
    assert decision.decline_class is row.cls
    assert decision.attempt_number == len(row.history) + 1
    assert row.reason in decision.reason
    if row.kind is K.GIVE_UP:
        assert decision.end_action is policy.end_action
    else:
        assert decision.end_action is None


def test_give_up_uses_policy_end_action() -> None:
    policy = make_policy(
        {
            "end_action": "leave_past_due",
            "limits": {"max_days": 1},
            "final_notice_days_before_end": 0,
        }
    )
    later = utc("2025-06-03T12:00")
    decision = decide(policy, [failed(MON, "processing_error")], now=later, time_zone="UTC")
    assert decision.kind is K.GIVE_UP
    assert decision.end_action is EndAction.LEAVE_PAST_DUE
    assert decision.at == later


def test_same_inputs_same_output() -> None:
    policy = make_policy()
    history = [failed("2025-06-01T10:00", "do_not_honor"), failed(MON, "insufficient_funds")]
    runs: list[Decision] = [
        decide(policy, history, now=utc(MON), time_zone="Europe/Berlin") for _ in range(3)
    ]
    assert runs[0] == runs[1] == runs[2]


def test_history_order_does_not_matter() -> None:
    policy = make_policy()
    history = [failed("2025-06-01T10:00", "generic_decline"), failed(MON, "generic_decline")]
    forward = decide(policy, history, now=utc(MON), time_zone="UTC")
    backward = decide(policy, history[::-1], now=utc(MON), time_zone="UTC")
    assert forward == backward


def test_recovered_case_is_refused() -> None:
    ok = replace(failed(MON), succeeded=True)
    with pytest.raises(ValueError, match="recovered"):
        decide(make_policy(), [failed("2025-06-01T10:00"), ok], now=utc(MON), time_zone="UTC")


@pytest.mark.parametrize(
    ("history", "now", "match"),
    [
        ([], utc(MON), "empty"),
        ([failed(MON)], datetime(2025, 6, 2, 12), "now must be timezone-aware"),
        ([replace(failed(MON), at=datetime(2025, 6, 2))], utc(MON), "attempt times"),
    ],
)
def test_bad_inputs(history: list[Attempt], now: datetime, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        decide(make_policy(), history, now=now, time_zone="UTC")


def test_retry_times_are_whole_minutes_inside_the_window() -> None:
    policy = make_policy({"timing": {"retry_hours": {"start": 0, "end": 24}}})
    decision = decide(
        policy, [failed("2025-06-02T10:00:07.5", "processing_error")], now=utc(MON),
        time_zone="UTC",
    )  # fmt: skip
    assert decision.at == utc("2025-06-02T16:01")
