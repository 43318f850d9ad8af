"""Money, date and locale rules, independent of any template."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dunning.formatting import (
    card_brand_name,
    format_local_date,
    format_money,
    format_month_year,
    minor_unit_exponent,
    resolve_locale,
)


@pytest.mark.parametrize(
    ("amount", "currency", "locale", "expected"),
    [
        (4900, "USD", "en", "$49.00"),
        (4900, "usd", "en", "$49.00"),
        (0, "USD", "en", "$0.00"),
        (123456789, "USD", "en", "$1,234,567.89"),
        (4900, "EUR", "es", "49,00\xa0€"),
        (4900, "CNY", "zh_CN", "¥49.00"),
        (4900, "JPY", "en", "¥4,900"),
        (4900, "KRW", "en", "₩4,900"),
        (12340, "KWD", "en", "KWD\xa012.340"),
        (50000, "ISK", "en", "ISK\xa0500"),  # Stripe keeps ISK two-decimal in the API
    ],
)
def test_format_money(amount: int, currency: str, locale: str, expected: str) -> None:
    # Babel separates a code-style symbol with nothing in en; compare ignoring that space.
    assert format_money(amount, currency, locale).replace("\xa0", "") == expected.replace(
        "\xa0", ""
    )


def test_minor_unit_exponent_follows_processor_convention() -> None:
    assert minor_unit_exponent("JPY") == 0
    assert minor_unit_exponent("usd") == 2
    assert minor_unit_exponent("ISK") == 2
    assert minor_unit_exponent("BHD") == 3


@pytest.mark.parametrize("amount", [49.0, "4900", True, None])
def test_money_rejects_non_integer_amounts(amount: object) -> None:
    with pytest.raises(TypeError):
        format_money(amount, "USD", "en")  # type: ignore[arg-type]


@pytest.mark.parametrize("currency", ["US", "XYZ", "12A", ""])
def test_money_rejects_bad_currency(currency: str) -> None:
    with pytest.raises(ValueError):
        format_money(100, currency, "en")


def test_local_date_crosses_midnight() -> None:
    moment = datetime(2025, 12, 31, 16, 30, tzinfo=UTC)
    assert format_local_date(moment, "UTC", "en") == "December 31, 2025"
    assert format_local_date(moment, "Asia/Shanghai", "zh_CN") == "2026年1月1日"
    assert format_local_date(moment, "America/Los_Angeles", "es") == "31 de diciembre de 2025"
    other_offset = moment.astimezone(timezone(timedelta(hours=-5)))
    assert format_local_date(other_offset, "Asia/Shanghai", "en") == "January 1, 2026"


def test_month_year() -> None:
    assert format_month_year(4, 2026, "en") == "April 2026"
    assert format_month_year(4, 2026, "es") == "abril de 2026"
    assert format_month_year(4, 2026, "zh_CN") == "2026年4月"


def test_resolve_locale_keeps_regional_format_locale() -> None:
    resolved = resolve_locale("es-MX")
    assert resolved.template_locale == "es"
    assert str(resolved.format_locale) == "es_MX"
    assert str(resolve_locale("fr_CA").format_locale) == "en"  # English words, English formats
    assert resolve_locale("es_MX", ("en",)).template_locale == "en"


def test_card_brand_names() -> None:
    assert card_brand_name("amex") == "American Express"
    assert card_brand_name("VISA") == "Visa"
    assert card_brand_name("unknown") == ""
    assert card_brand_name(None) == ""
    assert card_brand_name("new_network") == "New Network"
