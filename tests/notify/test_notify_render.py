"""Rendering of every template in every locale, strictness, escaping and fallback."""

from __future__ import annotations

import html as html_lib
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dunning.brand import Brand
from dunning.notify.render import (
    DEFAULT_TEMPLATES_DIR,
    END_ACTIONS,
    LOCALES,
    PAYMENT_LINK_TEMPLATES,
    TEMPLATE_VARIABLES,
    TEMPLATES,
    EmailTemplateError,
    MissingVariableError,
    UnknownTemplateError,
    _environments,
    render_email,
    sample_context,
)

HOSTILE = '<script>alert("x")</script> & Co'


def test_contract_covers_every_template() -> None:
    assert set(TEMPLATE_VARIABLES) == set(TEMPLATES)
    assert LOCALES == ("en", "zh_CN", "es")
    for template in TEMPLATES:
        assert set(sample_context(template)) == set(TEMPLATE_VARIABLES[template])


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_renders_in_every_locale(
    template: str, locale: str, brand: Brand, parse_html: Callable[[str], Any]
) -> None:
    ctx = sample_context(template)
    email = render_email(template, locale, ctx, brand=brand)

    assert email.locale == locale  # a real translation, not a silent fallback
    assert email.subject and email.subject == email.subject.strip()
    assert "\n" not in email.subject and "\r" not in email.subject
    assert email.text.endswith("\n") and "\n\n\n" not in email.text
    for part in (email.subject, email.text, email.html):
        assert "{{" not in part and "{%" not in part and "Undefined" not in part
    assert brand.support_email in email.text and brand.support_email in email.html
    assert brand.company_name in email.text and brand.company_name in email.html

    parsed = parse_html(email.html)
    assert parsed.errors == []
    assert email.html.startswith("<!DOCTYPE html>")
    assert f'<html lang="{locale.replace("_", "-")}">' in email.html
    lowered = email.html.lower()
    for forbidden in ("<script", "<style", "<link", "javascript:", "<form", "<iframe"):
        assert forbidden not in lowered
    assert not any("src" in attrs for _tag, attrs in parsed.tags)  # no logo configured

    if template in PAYMENT_LINK_TEMPLATES:
        url = ctx["update_url"]
        assert url in email.text.splitlines()  # the bare URL on its own line
        buttons = [
            attrs
            for tag, attrs in parsed.tags
            if tag == "a" and attrs.get("href") == url and "padding" in (attrs.get("style") or "")
        ]
        assert len(buttons) == 1
    else:
        assert "billing.example.com/pay" not in email.text + email.html


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_missing_variable_raises_naming_template_and_variable(
    template: str, brand: Brand
) -> None:
    for name in TEMPLATE_VARIABLES[template]:
        ctx = sample_context(template)
        del ctx[name]
        with pytest.raises(MissingVariableError) as info:
            render_email(template, "es", ctx, brand=brand)
        assert info.value.template == template
        assert info.value.variables == (name,)
        assert repr(template) in str(info.value) and name in str(info.value)


def _write_template(root: Path, name: str, subject: str, text: str, html: str) -> None:
    folder = root / "en" / name
    folder.mkdir(parents=True)
    (folder / "subject.txt").write_text(subject)
    (folder / "body.txt").write_text(text)
    (folder / "body.html").write_text(html)


def test_undeclared_undefined_variable_raises_at_render_time(tmp_path: Path, brand: Brand) -> None:
    _write_template(tmp_path, "custom", "Hello", "Dear {{ nobody }}", "<p>x</p>")
    with pytest.raises(MissingVariableError) as info:
        render_email("custom", "en", {}, brand=brand, templates_dir=tmp_path)
    assert info.value.variables == ("nobody",)
    assert "'custom'" in str(info.value) and "nobody" in str(info.value)


def test_date_without_time_zone_is_a_missing_variable(tmp_path: Path, brand: Brand) -> None:
    _write_template(tmp_path, "custom", "On {{ when|date }}", "x", "x")
    with pytest.raises(MissingVariableError, match="time_zone"):
        render_email(
            "custom",
            "en",
            {"when": datetime(2025, 1, 1, tzinfo=UTC)},
            brand=brand,
            templates_dir=tmp_path,
        )


def test_subject_is_collapsed_to_one_line(tmp_path: Path, brand: Brand) -> None:
    _write_template(tmp_path, "custom", "  Line one\n\n  line\r\ntwo \n", "x", "x")
    email = render_email("custom", "en", {}, brand=brand, templates_dir=tmp_path)
    assert email.subject == "Line one line two"


def test_subject_cannot_be_split_by_a_hostile_value(brand: Brand) -> None:
    ctx = sample_context("payment_failed") | {"plan_name": "Pro\r\nBcc: victim@example.com"}
    email = render_email("payment_failed", "en", ctx, brand=brand)
    assert "\n" not in email.subject and "\r" not in email.subject


def test_html_escapes_hostile_name_and_text_keeps_it(brand: Brand) -> None:
    ctx = sample_context("payment_failed") | {"customer_name": HOSTILE, "plan_name": "<b>Pro</b>"}
    email = render_email("payment_failed", "en", ctx, brand=brand)

    assert "<script" not in email.html and "<b>Pro</b>" not in email.html
    assert html_lib.escape(HOSTILE, quote=True).replace("&quot;", "&#34;") in email.html
    assert "<title>Action needed: your payment for &lt;b&gt;Pro&lt;/b&gt;" in email.html
    assert f"Hi {HOSTILE}," in email.text
    assert "<b>Pro</b>" in email.subject


def test_hostile_brand_values_are_escaped(parse_html: Callable[[str], Any]) -> None:
    brand = Brand(company_name='"><img src=x onerror=alert(1)>', support_email="a@b.example")
    email = render_email(
        "payment_recovered", "en", sample_context("payment_recovered"), brand=brand
    )
    assert "<img" not in email.html
    assert parse_html(email.html).errors == []


def test_empty_customer_name_gets_a_generic_greeting(brand: Brand) -> None:
    for locale, greeting in (("en", "Hi there,"), ("es", "Hola:"), ("zh_CN", "您好\uff1a")):
        ctx = sample_context("payment_recovered") | {"customer_name": None}
        email = render_email("payment_recovered", locale, ctx, brand=brand)
        assert email.text.startswith(greeting + "\n")


@pytest.mark.parametrize(
    ("locale", "currency", "amount", "expected"),
    [
        ("en", "USD", 4900, "$49.00"),
        ("es", "EUR", 4900, "49,00\xa0€"),
        ("zh_CN", "CNY", 4900, "¥49.00"),
        ("en", "JPY", 4900, "¥4,900"),
        ("zh_CN", "JPY", 4900, "JP¥4,900"),
        ("es_MX", "MXN", 129900, "$1,299.00"),
    ],
)
def test_amounts_are_formatted_for_locale_and_currency(
    locale: str, currency: str, amount: int, expected: str, brand: Brand
) -> None:
    ctx = sample_context("payment_failed") | {"amount": amount, "currency": currency}
    email = render_email("payment_failed", locale, ctx, brand=brand)
    assert expected in email.text
    assert expected in email.html


def test_zero_decimal_currency_is_not_divided_by_100(brand: Brand) -> None:
    ctx = sample_context("payment_failed") | {"amount": 500, "currency": "jpy"}
    email = render_email("payment_failed", "en", ctx, brand=brand)
    assert "¥500" in email.text
    assert "¥5.00" not in email.text and "¥5" not in email.text.replace("¥500", "")


@pytest.mark.parametrize(
    ("locale", "expected"),
    [("en", "March 15, 2025"), ("es", "15 de marzo de 2025"), ("zh_CN", "2025年3月15日")],
)
def test_dates_are_shown_in_the_customer_time_zone(
    locale: str, expected: str, brand: Brand
) -> None:
    # 18:30 UTC on the 14th is already 02:30 on the 15th in Shanghai.
    end = datetime(2025, 3, 14, 18, 30, tzinfo=UTC)
    ctx = sample_context("final_notice") | {"end_date": end, "time_zone": "Asia/Shanghai"}
    email = render_email("final_notice", locale, ctx, brand=brand)
    assert expected in email.subject
    assert expected in email.text
    assert expected in email.html

    utc = render_email("final_notice", "en", ctx | {"time_zone": "UTC"}, brand=brand)
    assert "March 14, 2025" in utc.subject


def test_naive_datetime_is_refused(brand: Brand) -> None:
    ctx = sample_context("final_notice") | {"end_date": datetime(2025, 3, 14, 18, 30)}
    with pytest.raises(ValueError, match="naive"):
        render_email("final_notice", "en", ctx, brand=brand)


def test_unknown_time_zone_is_refused(brand: Brand) -> None:
    ctx = sample_context("final_notice") | {"time_zone": "Mars/Olympus_Mons"}
    with pytest.raises(ValueError, match="time zone"):
        render_email("final_notice", "en", ctx, brand=brand)


@pytest.mark.parametrize(
    ("requested", "used"),
    [
        ("fr", "en"),
        ("fr_FR", "en"),
        ("es_MX", "es"),
        ("es-MX", "es"),
        ("es_419", "es"),
        ("zh", "zh_CN"),
        ("zh-Hans-CN", "zh_CN"),
        ("zh_TW", "en"),  # Traditional Chinese readers are not sent Simplified
        ("en_GB", "en"),
        (None, "en"),
        ("", "en"),
        ("not a locale", "en"),
    ],
)
def test_locale_fallback(requested: str | None, used: str, brand: Brand) -> None:
    email = render_email("payment_failed", requested, sample_context("payment_failed"), brand=brand)
    assert email.locale == used


def test_fallback_locale_keeps_regional_formats(brand: Brand) -> None:
    ctx = sample_context("payment_failed") | {"amount": 123456, "currency": "EUR"}
    spain = render_email("payment_failed", "es", ctx, brand=brand)
    mexico = render_email("payment_failed", "es_MX", ctx, brand=brand)
    assert "1.234,56\xa0€" in spain.text
    assert "EUR1,234.56" in mexico.text


def test_missing_translation_falls_back_to_english(tmp_path: Path, brand: Brand) -> None:
    root = tmp_path / "email_templates"
    shutil.copytree(DEFAULT_TEMPLATES_DIR, root)
    shutil.rmtree(root / "es" / "card_expiring")
    email = render_email(
        "card_expiring", "es_MX", sample_context("card_expiring"), brand=brand, templates_dir=root
    )
    assert email.locale == "en"
    assert "expires at the end of April 2025" in email.text  # English words, English formats


def test_unknown_template(brand: Brand) -> None:
    with pytest.raises(UnknownTemplateError):
        render_email("payment_exploded", "en", {}, brand=brand)
    with pytest.raises(UnknownTemplateError):
        render_email("../_layout", "en", {}, brand=brand)
    with pytest.raises(UnknownTemplateError):
        sample_context("payment_exploded")


@pytest.mark.parametrize("url", ["javascript:alert(1)", "/relative/path", "ftp://x.example/a", 42])
def test_update_url_must_be_absolute_http(url: object, brand: Brand) -> None:
    ctx = sample_context("payment_failed") | {"update_url": url}
    with pytest.raises(ValueError, match="update_url"):
        render_email("payment_failed", "en", ctx, brand=brand)


def test_end_action_must_be_known(brand: Brand) -> None:
    ctx = sample_context("final_notice") | {"end_action": "delete_everything"}
    with pytest.raises(EmailTemplateError, match="end_action"):
        render_email("final_notice", "en", ctx, brand=brand)


@pytest.mark.parametrize("locale", LOCALES)
def test_final_notice_says_what_happens_for_each_end_action(locale: str, brand: Brand) -> None:
    texts = set()
    for action in END_ACTIONS:
        ctx = sample_context("final_notice") | {"end_action": action}
        email = render_email("final_notice", locale, ctx, brand=brand)
        texts.add(email.subject)
        texts.add(email.text)
    assert len(texts) == 2 * len(END_ACTIONS)


@pytest.mark.parametrize(
    ("locale", "brand_code", "expected"),
    [
        ("en", "amex", "American Express ending in 0005"),
        ("en", "unknown", "card ending in 0005"),
        ("es", "mastercard", "tarjeta Mastercard terminada en 0005"),
        ("es", None, "tarjeta terminada en 0005"),
        ("zh_CN", "visa", "尾号为 0005 的 Visa 卡"),
        ("zh_CN", "unionpay", "尾号为 0005 的银联卡"),
        ("zh_CN", "unknown", "尾号为 0005 的银行卡"),
    ],
)
def test_card_description(locale: str, brand_code: str | None, expected: str, brand: Brand) -> None:
    ctx = sample_context("payment_failed") | {"card_brand": brand_code, "card_last4": "0005"}
    email = render_email("payment_failed", locale, ctx, brand=brand)
    assert expected in email.text


def test_plurals(brand: Brand) -> None:
    once = sample_context("payment_reminder") | {"attempt_number": 1}
    assert (
        "your payment method once so far"
        in render_email("payment_reminder", "en", once, brand=brand).text
    )
    assert (
        "lo hemos intentado una vez"
        in render_email("payment_reminder", "es", once, brand=brand).text
    )
    tomorrow = sample_context("renewal_reminder") | {"days_before": 1}
    assert "renews in 1 day," in render_email("renewal_reminder", "en", tomorrow, brand=brand).text
    assert "dentro de 1 día," in render_email("renewal_reminder", "es", tomorrow, brand=brand).text


def test_logo_is_the_only_external_asset(brand: Brand, parse_html: Callable[[str], Any]) -> None:
    logo = Brand(
        company_name="Acme Cloud",
        support_email="billing@acme.example",
        logo_url="https://cdn.acme.example/logo.png",
        accent_color="#0a7",
    )
    email = render_email("payment_failed", "en", sample_context("payment_failed"), brand=logo)
    sources = [attrs["src"] for tag, attrs in parse_html(email.html).tags if "src" in attrs]
    assert sources == ["https://cdn.acme.example/logo.png"]
    assert 'bgcolor="#0a7"' in email.html


@pytest.mark.parametrize(
    "kwargs",
    [
        {"accent_color": "red;background:url(https://evil.example)"},
        {"accent_color": "#12345"},
        {"logo_url": "javascript:alert(1)"},
        {"support_email": "not an email"},
        {"company_name": "  "},
    ],
)
def test_brand_is_validated(kwargs: dict[str, Any]) -> None:
    values: dict[str, Any] = {"company_name": "Acme", "support_email": "a@acme.example"} | kwargs
    with pytest.raises(ValueError):
        Brand(**values)


def test_environments_are_built_once() -> None:
    root = DEFAULT_TEMPLATES_DIR.resolve()
    assert _environments(root) is _environments(root)
    text_env, html_env = _environments(root)
    assert html_env.autoescape is True and text_env.autoescape is False
