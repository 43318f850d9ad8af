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


def fmt_duration(hours: float | None, sep: str = " ") -> str:
    """A time to recovery in the unit that reads: minutes, hours, then days.

    Why: most recoveries by a new card take minutes; in days they all read "0.0 d".
    """
    if hours is None:
        return "-"
    if hours < 1:
        minutes = round(hours * 60)
        return f"<1{sep}min" if minutes < 1 else f"{minutes}{sep}min"
    if hours < 48:
        return f"{hours:.1f}{sep}h"
    return f"{hours / 24:.1f}{sep}d"


def fmt_money_axis(value: float, currency: str) -> str:
    """A money axis label in major units with the currency: ``$12.3k``, ``CHF 1.2M``."""
    code = currency.upper()
    try:
        exponent = minor_unit_exponent(code)
    except (ValueError, LookupError):
        exponent = 2
    major = value / 10**exponent
    if major >= 1_000_000:
        short = f"{_trim(major / 1_000_000)}M"
    elif major >= 1_000:
        short = f"{_trim(major / 1_000)}k"
    else:
        short = _trim(major)
    symbol = _SYMBOLS.get(code)
    return f"{symbol}{short}" if symbol else f"{code} {short}"


def _trim(number: float) -> str:
    """One decimal at most, none when it is 0: 5k, 2.5k, 12k."""
    return f"{number:.1f}".removesuffix(".0") if number < 10 else f"{number:.0f}"


_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹", "KRW": "₩"}
"""Symbols that name one currency unambiguously; any other currency shows its code."""


def exact(value: Any) -> str:
    """The exact value behind a formatted cell, for ``data-value`` (repr of floats)."""
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def email_step_name(step: int | None, template: str) -> str:
    """``Email 1: payment failed`` for a policy step (numbered from 1), else the email's
    own name (``Final notice``, ``Action required``)."""
    words = template.replace("_", " ")
    if step is None:
        return words[:1].upper() + words[1:]
    return f"Email {step + 1}: {words}"
