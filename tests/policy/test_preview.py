"""``simulate``: the schedule ops preview."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from dunning.policy.declines import DeclineClass
from dunning.policy.models import EndAction, load_policy
from dunning.policy.preview import simulate
from dunning.policy.records import Attempt, DecisionKind

from .factories import failed, make_policy, utc
from .test_models import DEFAULT

K = DecisionKind


def test_default_policy_temporary_schedule() -> None:
    policy = load_policy(DEFAULT)
    first = failed("2025-03-03T14:00", "processing_error")
    decisions = simulate(policy, first, time_zone="America/New_York")

    retries = [d for d in decisions if d.kind is K.RETRY]
    assert [d.attempt_number for d in retries] == list(range(2, 6))  # 5 attempts
    # the attempts are used up, but the case waits for a new card until day 28
    assert [d.kind for d in decisions[-2:]] == [K.WAIT_FOR_CARD, K.GIVE_UP]
    assert decisions[-1].at == utc("2025-03-31T14:00")
    assert decisions[-1].end_action is EndAction.CANCEL_SUBSCRIPTION
    times = [d.at for d in retries if d.at is not None]
    assert times == sorted(times) and len(set(times)) == len(times)
    tz = ZoneInfo("America/New_York")
    for t in times:
        local = t.astimezone(tz)
        assert 9 <= local.hour < 18 and local.weekday() < 5
    assert times[0] == utc("2025-03-03T20:00")  # 6 h later, 15:00 in New York


def test_default_policy_insufficient_funds_lands_on_paydays() -> None:
    policy = load_policy(DEFAULT)
    first = failed("2025-03-03T14:00", "insufficient_funds")
    decisions = simulate(policy, first, time_zone="America/New_York")
    days = [d.at.astimezone(ZoneInfo("America/New_York")).date().isoformat()
            for d in decisions if d.kind is K.RETRY and d.at]  # fmt: skip
    # The next Friday; a payday at least 5 days later (Friday the 14th); one at least 10
    # days after that (Friday the 28th); the next would be after day 28.
    assert days == ["2025-03-07", "2025-03-14", "2025-03-28"]
    assert [d.kind for d in decisions[-2:]] == [K.WAIT_FOR_CARD, K.GIVE_UP]


def test_default_policy_retries_do_not_honor_on_paydays_across_the_window() -> None:
    """It used to retry once after 6 hours and then wait for a card that mostly never came."""
    policy = load_policy(DEFAULT)
    first = failed("2025-03-03T14:00", "do_not_honor", network_decline_code="05")
    decisions = simulate(policy, first, time_zone="America/New_York")
    retries = [d for d in decisions if d.kind is K.RETRY]
    times = [d.at for d in retries if d.at is not None]
    days = [t.astimezone(ZoneInfo("America/New_York")).date().isoformat() for t in times]
    assert days == ["2025-03-07", "2025-03-14", "2025-03-21", "2025-03-28"]
    assert all(d.decline_class is DeclineClass.UNKNOWN for d in retries)


def test_hard_decline_waits_then_gives_up() -> None:
    first = failed("2025-06-02T12:00", "stolen_card")
    decisions = simulate(make_policy(), first, time_zone="UTC")
    assert [d.kind for d in decisions] == [K.WAIT_FOR_CARD, K.GIVE_UP]
    assert decisions[0].at == decisions[1].at == utc("2025-06-23T12:00")


def test_outcomes_can_recover_the_case() -> None:
    def outcomes(number: int) -> Attempt | None:
        return replace(failed("2000-01-01"), succeeded=True) if number == 3 else None

    first = failed("2025-06-02T08:00", "processing_error")
    decisions = simulate(make_policy(), first, time_zone="UTC", outcomes=outcomes)
    assert [(d.kind, d.attempt_number) for d in decisions] == [(K.RETRY, 2), (K.RETRY, 3)]


def test_outcomes_can_change_the_decline() -> None:
    def outcomes(number: int) -> Attempt | None:
        return failed("2000-01-01", "expired_card") if number == 2 else None

    first = failed("2025-06-02T08:00", "processing_error")
    decisions = simulate(make_policy(), first, time_zone="UTC", outcomes=outcomes)
    assert [d.kind for d in decisions] == [K.RETRY, K.WAIT_FOR_CARD, K.GIVE_UP]
    assert decisions[1].decline_class is DeclineClass.CARD_DATA


def test_mastercard_advice_shapes_the_preview() -> None:
    first = failed("2025-06-02T12:00", "insufficient_funds", network_advice_code="30",
                   card_brand="mastercard")  # fmt: skip
    decisions = simulate(make_policy(), first, time_zone="UTC")
    retries = [d for d in decisions if d.kind is K.RETRY]
    assert retries[0].at == utc("2025-06-12T12:00")  # 10 days, MAC 30
    gaps = [b.at - a.at for a, b in pairwise(retries) if a.at and b.at]
    assert gaps and all(gap >= timedelta(days=10) for gap in gaps)


def test_simulate_is_pure() -> None:
    first = failed("2025-06-02T12:00", "generic_decline", card_brand="mastercard")
    policy = make_policy()
    assert simulate(policy, first, time_zone="Europe/Berlin") == simulate(
        policy, first, time_zone="Europe/Berlin"
    )


def test_first_failure_must_fail() -> None:
    with pytest.raises(ValueError, match="failed attempt"):
        simulate(make_policy(), replace(failed("2025-06-02"), succeeded=True), time_zone="UTC")
