"""Time zones, one way: stored names fall back quietly, names typed by a person do not.

A customer's zone comes from processor data and is often missing or stale: using it
must never fail a charge or an email, so :func:`customer_zone` falls back (to the
account's zone, then UTC). A zone an operator typed is checked by :func:`parse_zone`,
which says what is wrong instead of guessing.
"""

from __future__ import annotations

from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class UnknownTimeZone(ValueError):
    """A zone name that is not in the IANA database."""


@lru_cache(maxsize=512)
def parse_zone(name: str) -> ZoneInfo:
    """The zone with this IANA name, or :class:`UnknownTimeZone` with a readable message."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise UnknownTimeZone(
            f"unknown time zone {name!r} (use an IANA name like 'America/New_York')"
        ) from None


def customer_zone(name: str | None, fallback: str | None = "UTC") -> ZoneInfo:
    """The customer's zone, else ``fallback`` (the account's), else UTC; never fails."""
    for candidate in (name, fallback):
        if candidate:
            try:
                return parse_zone(candidate)
            except UnknownTimeZone:
                continue
    return ZoneInfo("UTC")
