"""The customer's calendar: retry windows, weekends, holidays and paydays.

Why: a retry lands best when the customer has money and the issuer's systems are up,
which is a local business hour on a working day; paydays matter for insufficient funds.
All functions are pure; times in and out are timezone-aware UTC.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from dunning.policy.models import WEEKDAYS, Payday, Timing

_SEARCH_DAYS = 800  # far more than any weekend/holiday run or payday gap


def resolve_zone(time_zone: str | None, fallback: str = "UTC") -> ZoneInfo:
    """The customer's zone, else the account's, else UTC (bad or empty names fall back)."""
    for name in (time_zone, fallback):
        if not name:
            continue
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


@lru_cache(maxsize=256)
def _holidays(country: str, year: int) -> frozenset[date]:
    return frozenset(holidays.country_holidays(country, years=year).keys())


def is_holiday(day: date, timing: Timing) -> bool:
    """A public holiday in the policy's holiday country."""
    return _is_holiday(day, timing.holiday_country)


def _is_holiday(day: date, country: str | None) -> bool:
    return country is not None and day in _holidays(country, day.year)


def is_business_day(day: date, timing: Timing) -> bool:
    """Monday to Friday and not a holiday (used for ``last_business_day`` paydays)."""
    return _is_business_day(day, timing.holiday_country)


def _is_business_day(day: date, country: str | None) -> bool:
    return day.weekday() < 5 and not _is_holiday(day, country)


def is_retry_day(day: date, timing: Timing) -> bool:
    """A day on which the policy lets retries run."""
    if timing.skip_weekends and day.weekday() >= 5:
        return False
    return not is_holiday(day, timing)


def _at_local(day: date, hour: int, tz: ZoneInfo) -> datetime:
    if hour == 24:
        day, hour = day + timedelta(days=1), 0
    return datetime(day.year, day.month, day.day, hour, tzinfo=tz).astimezone(UTC)


def window(day: date, timing: Timing, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """The retry window of a local day, as UTC ``[start, end)``."""
    hours = timing.retry_hours
    return _at_local(day, hours.start, tz), _at_local(day, hours.end, tz)


def ceil_minute(t: datetime) -> datetime:
    """Round up to a whole minute, so schedules read cleanly and never move earlier."""
    floor = t.replace(second=0, microsecond=0)
    return floor if floor == t else floor + timedelta(minutes=1)


def fit(t: datetime, timing: Timing, tz: ZoneInfo) -> datetime:
    """Earliest instant ``>= t`` inside the retry window of an allowed local day."""
    t = ceil_minute(t)
    day = t.astimezone(tz).date() - timedelta(days=1)  # a window may start the day before
    for _ in range(_SEARCH_DAYS):
        if is_retry_day(day, timing):
            start, end = window(day, timing, tz)
            if start < end and t < end:  # a DST jump can empty a one-hour window
                return max(t, start)
        day += timedelta(days=1)
    raise ValueError("no allowed retry day found: check skip_weekends and holidays")


def is_payday(day: date, paydays: tuple[Payday, ...], timing: Timing) -> bool:
    """Whether a local date is one of the policy's paydays."""
    return _is_payday(day, paydays, timing.holiday_country)


@lru_cache(maxsize=8192)  # pure; the backtest asks about the same days very often
def _is_payday(day: date, paydays: tuple[Payday, ...], holiday_country: str | None) -> bool:
    last = calendar.monthrange(day.year, day.month)[1]
    for payday in paydays:
        if isinstance(payday, int):
            if day.day == min(payday, last):
                return True
        elif payday == "last_day":
            if day.day == last:
                return True
        elif payday == "last_business_day":
            if _is_business_day(day, holiday_country) and not any(
                _is_business_day(day.replace(day=d), holiday_country)
                for d in range(day.day + 1, last + 1)
            ):
                return True
        elif WEEKDAYS.index(payday) == day.weekday():
            return True
    return False


def next_payday_slot(t: datetime, timing: Timing, tz: ZoneInfo) -> datetime:
    """First retry slot ``>= t`` on a payday: the window start, or ``t`` if already inside.

    A payday that falls on a skipped day (weekend, holiday) moves to the next allowed
    slot, since the money is there by then.
    """
    day = t.astimezone(tz).date() - timedelta(days=1)
    for _ in range(_SEARCH_DAYS):
        if is_payday(day, timing.paydays, timing):
            start, end = window(day, timing, tz)
            if t < end:
                return fit(max(t, start), timing, tz)
        day += timedelta(days=1)
    raise ValueError("no payday found: timing.paydays is empty")
