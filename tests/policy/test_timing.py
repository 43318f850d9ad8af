"""Calendar helpers: windows, DST, paydays, time-zone fallback."""

from __future__ import annotations

from datetime import date

import pytest

from dunning.policy.models import Timing
from dunning.policy.timing import ceil_minute, fit, is_payday, next_payday_slot, resolve_zone

from .factories import make_policy, utc


def timing(**changes: object) -> Timing:
    return make_policy({"timing": changes}).timing


def test_ceil_minute_never_moves_earlier() -> None:
    assert ceil_minute(utc("2025-06-02T10:00")) == utc("2025-06-02T10:00")
    assert ceil_minute(utc("2025-06-02T10:00:00.000001")) == utc("2025-06-02T10:01")


def test_window_end_is_exclusive() -> None:
    t = timing(retry_hours={"start": 9, "end": 18})
    tz = resolve_zone("UTC")
    assert fit(utc("2025-06-02T17:59"), t, tz) == utc("2025-06-02T17:59")
    assert fit(utc("2025-06-02T18:00"), t, tz) == utc("2025-06-03T09:00")


def test_window_until_midnight() -> None:
    t = timing(retry_hours={"start": 20, "end": 24})
    assert fit(utc("2025-06-02T23:30"), t, resolve_zone("UTC")) == utc("2025-06-02T23:30")


def test_dst_gap_that_empties_the_window_skips_the_day() -> None:
    # 2025-03-09 02:00-03:00 does not exist in New York.
    t = timing(retry_hours={"start": 2, "end": 3}, skip_weekends=False)
    tz = resolve_zone("America/New_York")
    assert fit(utc("2025-03-09T05:00"), t, tz) == utc("2025-03-10T06:00")


def test_dst_shift_keeps_local_hour() -> None:
    t = timing()
    tz = resolve_zone("Europe/Berlin")
    assert fit(utc("2025-03-28T20:00"), t, tz) == utc("2025-03-31T07:00")  # CEST after the jump
    assert fit(utc("2025-03-27T20:00"), t, tz) == utc("2025-03-28T08:00")  # still CET


@pytest.mark.parametrize(
    ("day", "paydays", "expected"),
    [
        (date(2025, 2, 28), (31,), True),  # clamped to the month's end
        (date(2025, 2, 27), (31,), False),
        (date(2025, 5, 30), ("last_business_day",), True),  # the 31st is a Saturday
        (date(2025, 5, 31), ("last_business_day",), False),
        (date(2025, 5, 31), ("last_day",), True),
        (date(2025, 6, 6), ("friday",), True),
        (date(2025, 6, 6), (1, 15), False),
    ],
)
def test_paydays(day: date, paydays: tuple[int | str, ...], expected: bool) -> None:
    assert is_payday(day, paydays, timing()) is expected


def test_last_business_day_skips_holidays() -> None:
    # Good Friday 2024-03-29 was the last weekday of March; in Germany it is a holiday.
    german = timing(holiday_country="DE")
    assert not is_payday(date(2024, 3, 29), ("last_business_day",), german)
    assert is_payday(date(2024, 3, 28), ("last_business_day",), german)
    assert is_payday(date(2024, 3, 29), ("last_business_day",), timing())


def test_next_payday_slot_in_shanghai() -> None:
    t = timing(paydays=[15])
    # 2025-06-15 is a Sunday: the money is there on Monday at 09:00 local (01:00 UTC).
    got = next_payday_slot(utc("2025-06-02T12:00"), t, resolve_zone("Asia/Shanghai"))
    assert got == utc("2025-06-16T01:00")


@pytest.mark.parametrize(
    ("name", "fallback", "expected"),
    [
        ("Asia/Shanghai", "UTC", "Asia/Shanghai"),
        ("", "Europe/Berlin", "Europe/Berlin"),
        ("Mars/Olympus", "Europe/Berlin", "Europe/Berlin"),
        ("../../etc/passwd", "America/New_York", "America/New_York"),
        ("bad", "worse", "UTC"),
        (None, "", "UTC"),
    ],
)
def test_resolve_zone(name: str | None, fallback: str, expected: str) -> None:
    assert resolve_zone(name, fallback).key == expected
