"""Each baseline makes exactly the attempts it is specified to make."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dunning.backtest.cases import Codes
from dunning.backtest.deciders import FixedSchedule, baselines
from dunning.backtest.simulate import run_case
from dunning.backtest.world import State, load_world

from .factories import MONDAY, hand_case

DEAD_05 = Codes("do_not_honor", "05")  # a dead card that says nothing: retried, never approved
EXPECTED_DAYS = {
    "fixed +3/+5/+7/+14": [3, 5, 7, 14],
    "8 over 14 days": [1.75 * k for k in range(1, 9)],
    "daily for 14 days": list(range(1, 15)),
    "no retries": [],
}


@pytest.mark.parametrize("baseline", baselines(), ids=lambda b: b.name)
def test_retry_days_and_nothing_after_the_window(baseline: FixedSchedule) -> None:
    result = run_case(load_world(), hand_case(DEAD_05), baseline)
    days = [(a.at - MONDAY) / timedelta(days=1) for a in result.attempts[1:]]
    assert days == pytest.approx(EXPECTED_DAYS[baseline.name])
    assert all(a.merchant for a in result.attempts)
    assert result.ended == "gave_up" and result.retries == len(days)
    assert not result.violations


def test_the_names_are_the_four_of_the_issue() -> None:
    assert [b.name for b in baselines()] == list(EXPECTED_DAYS)


@pytest.mark.parametrize("baseline", baselines()[:3], ids=lambda b: b.name)
def test_a_processor_refused_code_is_not_retried(baseline: FixedSchedule) -> None:
    result = run_case(load_world(), hand_case(Codes("stolen_card", "43")), baseline)
    assert result.retries == 0 and not result.violations


def test_a_baseline_stops_at_the_first_approval() -> None:
    result = run_case(load_world(), hand_case(DEAD_05, approve=0.0), baselines()[0])
    assert not result.recovered and result.retries == 4  # dead: never, whatever the draw
    hold = hand_case(DEAD_05, state=State.HOLD, approve=0.0, clear_at=MONDAY + timedelta(days=4))
    result = run_case(load_world(), hold, baselines()[0])
    assert result.recovered and result.by == "retry" and result.retries == 2  # days 3 and 5
