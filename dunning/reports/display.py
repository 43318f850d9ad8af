"""How report numbers are shown to a person: rates, money, days (dashboard and CLI).

Why apart from the dashboard: ``dunning report`` prints the same cells, and the terminal
command must not load the web stack to format a number.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from dunning.formatting import format_money, minor_unit_exponent


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def fmt_money(amount: int | None, currency: str) -> str:
    """English money format; a code Babel does not know still shows its amount."""
    if amount is None:
        return "-"
    try:
        return format_money(int(amount), currency.upper(), "en")
    except (ValueError, LookupError):
        exponent = minor_unit_exponent(currency.upper()) if len(currency) == 3 else 2
        return f"{Decimal(int(amount)).scaleb(-exponent):,} {currency.upper()}"


def fmt_days(hours: float | None) -> str:
    return "-" if hours is None else f"{hours / 24:.1f} d"


def exact(value: Any) -> str:
    """The exact value behind a formatted cell, for ``data-value`` (repr of floats)."""
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)
