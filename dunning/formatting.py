"""Locale, money and date formatting for customer emails.

Kept apart from the Jinja plumbing so the rules (which locale a customer gets, how many
decimals an amount has) can be tested and reused by previews without rendering a template.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_skeleton
from babel.numbers import UnknownCurrencyError, format_currency, validate_currency

DEFAULT_LOCALE = "en"
LOCALES: tuple[str, ...] = ("en", "zh_CN", "es")

# Amounts arrive as integers in the processor's smallest unit, which follows Stripe's API
# convention rather than ISO 4217/CLDR: ISK, HUF and TWD are two-decimal there even though
# they are charged in whole units, so CLDR digits would misplace the decimal point by 100x.
# https://docs.stripe.com/currencies#zero-decimal and #special-cases
ZERO_DECIMAL_CURRENCIES = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV"}
    | {"XAF", "XOF", "XPF"}
)
THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})

_CARD_BRANDS = {
    "amex": "American Express",
    "american_express": "American Express",
    "cartes_bancaires": "Cartes Bancaires",
    "diners": "Diners Club",
    "discover": "Discover",
    "eftpos_au": "eftpos",
    "interac": "Interac",
    "jcb": "JCB",
    "mastercard": "Mastercard",
    "unionpay": "UnionPay",
    "visa": "Visa",
}


@dataclass(frozen=True)
class ResolvedLocale:
    """The template translation to use and the (possibly more specific) formatting locale.

    A customer in ``es_MX`` reads the ``es`` templates but sees Mexican number conventions.
    """

    template_locale: str
    format_locale: Locale


@lru_cache(maxsize=512)
def resolve_locale(requested: str | None, available: tuple[str, ...] = LOCALES) -> ResolvedLocale:
    """Pick the best available translation for a customer's locale, falling back to English.

    Order: exact language+territory match, then same language (``es_MX`` -> ``es``,
    ``zh`` -> ``zh_CN``), then ``en``. Traditional Chinese (``zh_TW``, ``zh_Hant``) is not
    served Simplified Chinese: that is a different written language for the reader.
    """
    default = ResolvedLocale(DEFAULT_LOCALE, Locale.parse(DEFAULT_LOCALE))
    parsed = _parse_locale(requested)
    if parsed is None:
        return default
    if parsed.language == "zh" and parsed.script == "Hant":
        return default
    candidates = [(loc, Locale.parse(loc)) for loc in available]
    for name, loc in candidates:
        if loc.language == parsed.language and loc.territory == parsed.territory:
            return ResolvedLocale(name, parsed)
    for name, loc in candidates:
        if loc.language == parsed.language:
            return ResolvedLocale(name, parsed)
    return default


def _parse_locale(value: str | None) -> Locale | None:
    """Parse ``es-MX``, ``es_MX``, ``zh-Hans-CN`` and the like; ``None`` when unusable."""
    if not value or not value.strip():
        return None
    text = value.strip().replace("-", "_")
    try:
        return Locale.parse(text)
    except (UnknownLocaleError, ValueError, TypeError):
        return None


def minor_unit_exponent(currency: str) -> int:
    """Number of decimals in the processor's integer amount for ``currency``."""
    code = currency.upper()
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def format_money(amount: int, currency: str, locale: Locale | str) -> str:
    """Format an integer minor-unit amount, e.g. ``(4900, "USD", "en")`` -> ``$49.00``.

    Rejects floats and bools: money that went through a float has already lost cents.
    """
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"amount must be an int in minor units, got {type(amount).__name__}")
    if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
        raise ValueError(f"currency must be a 3-letter ISO 4217 code, got {currency!r}")
    code = _known_currency(currency.upper())
    value = Decimal(amount).scaleb(-minor_unit_exponent(code))
    return format_currency(value, code, locale=locale)


def to_local(moment: datetime, time_zone: str) -> datetime:
    """Convert an aware datetime to the customer's zone; naive datetimes are refused."""
    if not isinstance(moment, datetime):
        raise TypeError(f"expected a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC from the database)")
    return moment.astimezone(_zone(time_zone))


def format_local_date(moment: datetime, time_zone: str, locale: Locale | str) -> str:
    """The calendar day the customer sees, e.g. ``March 15, 2025`` / ``2025年3月15日``."""
    return format_date(to_local(moment, time_zone).date(), format="long", locale=locale)


def format_month_year(month: int, year: int, locale: Locale | str) -> str:
    """A card expiry as words, e.g. ``March 2026`` / ``marzo de 2026`` / ``2026年3月``."""
    return format_skeleton("yMMMM", date(int(year), int(month), 1), locale=locale)


def card_brand_name(brand: str | None) -> str:
    """Display name for a processor card brand code (``amex`` -> ``American Express``).

    Returns ``""`` for a missing or ``unknown`` brand so templates can say "card" instead.
    """
    code = (brand or "").strip().lower()
    if code in _CARD_BRANDS:
        return _CARD_BRANDS[code]
    if code in ("", "unknown"):
        return ""
    return code.replace("_", " ").title()


@lru_cache(maxsize=256)
def _known_currency(code: str) -> str:
    """Refuse codes CLDR does not know rather than print them; cached, it sits on the hot path."""
    try:
        validate_currency(code)
    except UnknownCurrencyError as exc:
        raise ValueError(f"unknown currency {code!r}") from exc
    return code


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {name!r}") from exc
