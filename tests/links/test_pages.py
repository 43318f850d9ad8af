"""The page's words, locales, money and what the browser may load; no server needed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from markupsafe import escape
from pydantic import ValidationError

from dunning.brand import Brand
from dunning.links import pages
from dunning.links.customer import RenewalView
from dunning.links.messages import INTERVALS, MESSAGES, interval_text
from dunning.links.service import Card, CaseView
from dunning.settings import Settings

BRAND = Brand("Acme Cloud", "support@example.com", accent_color="#635bff")
KINDS = ("invalid", "expired", "closed", "paid", "limited", "unavailable")


def _view(**overrides: object) -> CaseView:
    values: dict[str, object] = {
        "case_id": 1,
        "customer_id": "cus_1",
        "subscription_id": "sub_1",
        "amount": 4900,
        "currency": "usd",
        "locale": None,
        "plan_name": "Pro",
        "interval": "month",
        "interval_count": 1,
        "card": Card("visa", "0341", 12, 2031),
        "card_failed": True,
    }
    values.update(overrides)
    return CaseView(**values)  # type: ignore[arg-type]


FORM = pages.CardForm("seti_1_secret_x", "pk_test_x", pages.STRIPE_JS_URL, "/pay/t/card")


def _pay(view: CaseView, locale: str, result: str | None = None) -> pages.Rendered:
    return pages.render_pay(
        view,
        locale=locale,
        brand=BRAND,
        form=FORM,
        result=result,
    )


def test_every_locale_has_every_message_and_interval() -> None:
    for locale, messages in MESSAGES.items():
        assert messages.keys() == MESSAGES["en"].keys(), locale
        assert INTERVALS[locale].keys() == INTERVALS["en"].keys(), locale


@pytest.mark.parametrize("locale", list(MESSAGES))
@pytest.mark.parametrize("kind", KINDS)
def test_message_pages_render_in_every_locale(kind: str, locale: str) -> None:
    rendered = pages.render_message(kind, locale, BRAND, retry_url="/pay/x")
    assert str(escape(MESSAGES[locale][f"{kind}_title"])) in rendered.html
    assert "<script" not in rendered.html
    assert "default-src 'none'" in rendered.csp and "script-src" not in rendered.csp


@pytest.mark.parametrize(
    ("locale", "amount", "words"),
    [
        ("en", "$49.00", "Save card and pay $49.00"),
        ("es", "49,00\xa0US$", "Guardar tarjeta y pagar"),
        ("zh_CN", "US$49.00", "保存银行卡并支付"),
    ],
)
def test_the_page_speaks_the_customers_language(locale: str, amount: str, words: str) -> None:
    html = _pay(_view(locale=locale), locale).html
    assert amount in html and words in html
    assert f'data-locale="{ {"en": "en", "es": "es", "zh_CN": "zh"}[locale] }"' in html


def test_card_plan_and_notice() -> None:
    html = _pay(_view(), "en", result="declined").html
    assert "Visa ending in 0341 · Expires 12/31" in html
    assert "Pro · per month" in html
    assert "That card was declined" in html
    assert "didn&#39;t go through" in html  # the failed card is flagged
    assert "<script" in html and 'nonce="' in html


def test_unknown_results_and_missing_cards_are_harmless() -> None:
    html = _pay(_view(card=None, card_failed=False), "en", result="<script>").html
    assert "No card on file." in html and "&lt;script&gt;" not in html
    yearly = _pay(_view(interval="year", interval_count=2, currency="jpy", amount=5000), "en")
    assert "every 2 years" in yearly.html and "¥5,000" in yearly.html


def test_interval_words() -> None:
    assert interval_text("es", "month", 3) == "cada 3 meses"
    assert interval_text("zh_CN", "year", 1) == "每年"
    assert interval_text("en", None, None) == ""


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        (None, "en"),
        ("es-MX,es;q=0.9,en;q=0.8", "es"),
        ("fr-FR,fr;q=0.9,zh-CN;q=0.8", "zh_CN"),
        ("en-GB,es;q=0.5", "en"),
        ("de;q=1,es;q=0", "en"),
        ("zh-TW", "en"),
        ("garbage;;q=x", "en"),
    ],
)
def test_error_pages_follow_the_browsers_language(header: str | None, locale: str) -> None:
    assert pages.locale_from_header(header) == locale


def test_csp_allows_only_stripe_js() -> None:
    csp = pages.page_csp(pages.STRIPE_JS_URL, "n0nce")
    assert "script-src 'nonce-n0nce' https://js.stripe.com" in csp
    assert "connect-src 'self' https://api.stripe.com" in csp
    assert "frame-ancestors 'none'" in csp
    local = pages.page_csp("http://127.0.0.1:8420/js.stripe.com/v3/", "n")
    assert "script-src 'nonce-n' http://127.0.0.1:8420;" in local


def test_stripe_js_and_key_defaults() -> None:
    assert pages.stripe_js_url(Settings()) == pages.STRIPE_JS_URL
    assert pages.publishable_key(Settings()) is None
    sandbox = Settings(stripe_api_key="sk_test_demo", stripe_api_base="http://127.0.0.1:8420")
    assert pages.stripe_js_url(sandbox) == "http://127.0.0.1:8420/js.stripe.com/v3/"
    assert pages.publishable_key(sandbox) == "pk_test_sandbox"
    remote = Settings(stripe_api_key="sk_test_x", stripe_api_base="https://stripe-proxy.internal")
    assert pages.stripe_js_url(remote) == pages.STRIPE_JS_URL
    assert pages.publishable_key(remote) is None
    chosen = Settings(stripe_js_url="https://js.example/v3/", stripe_publishable_key="pk_test_1")
    assert pages.stripe_js_url(chosen) == "https://js.example/v3/"
    assert pages.publishable_key(chosen) == "pk_test_1"


def test_brand_colour_cannot_inject_css() -> None:
    assert Settings(brand_color="#0a0").branding().accent_color == "#0a0"
    with pytest.raises(ValidationError, match="accent_color"):
        Settings(brand_color="red;}</style>")


def test_expiry_text_is_two_digit_year() -> None:
    html = _pay(
        _view(card=Card("mastercard", "4444", 3, datetime(2030, 1, 1, tzinfo=UTC).year)), "en"
    )
    assert "Mastercard ending in 4444 · Expires 03/30" in html.html


def _renewal(**overrides: object) -> RenewalView:
    values: dict[str, object] = {
        "customer_id": "cus_1",
        "subscription_id": "sub_1",
        "locale": None,
        "time_zone": "America/Los_Angeles",
        "plan_name": "Pro",
        "interval": "year",
        "interval_count": 1,
        "renews_at": datetime(2027, 1, 1, 3, tzinfo=UTC),  # still Dec 31 in Los Angeles
        "amount": 49000,
        "currency": "usd",
        "card": Card("visa", "4242", 11, 2026),
        "card_expires_before_renewal": True,
    }
    values.update(overrides)
    return RenewalView(**values)  # type: ignore[arg-type]


def _renew(view: RenewalView, locale: str, result: str | None = None) -> pages.Rendered:
    return pages.render_renewal(
        view,
        locale=locale,
        brand=BRAND,
        form=FORM,
        result=result,
    )


@pytest.mark.parametrize(
    ("locale", "amount", "date", "words"),
    [
        ("en", "$490.00", "Renews on December 31, 2026", "Save card"),
        ("es", "490,00\xa0US$", "Se renueva el 31 de diciembre de 2026", "Guardar tarjeta"),
        ("zh_CN", "US$490.00", "续订日期：2026年12月31日", "保存银行卡"),  # noqa: RUF001
    ],
)
def test_the_renewal_page_speaks_the_customers_language(
    locale: str, amount: str, date: str, words: str
) -> None:
    rendered = _renew(_renewal(locale=locale), locale)
    html = rendered.html
    assert amount in html and date in html and words in html
    assert str(escape(MESSAGES[locale]["card_expires_before_renewal"])) in html
    assert str(escape(MESSAGES[locale]["no_charge"])) in html
    assert 'data-secret="seti_1_secret_x"' in html and 'action="/pay/t/card"' in html
    assert "script-src 'nonce-" in rendered.csp


def test_renewal_page_without_amount_card_or_warning_and_its_notices() -> None:
    html = _renew(
        _renewal(amount=None, card=None, card_expires_before_renewal=False), "en", "saved"
    ).html
    assert 'data-testid="amount"' not in html and "No card on file." in html
    assert 'data-testid="card-warning"' not in html
    assert "Your new card is saved" in html and "notice-ok" in html
    assert "Visa ending in 4242 · Expires 11/26" in _renew(_renewal(), "en").html
    assert "That card was declined" not in _renew(_renewal(), "en", "declined").html


def test_saved_outcome_page() -> None:
    rendered = pages.render_outcome("saved", "es", BRAND, "/pay/x")
    assert "Tu tarjeta está guardada" in rendered.html and "<script" not in rendered.html


@pytest.mark.parametrize("locale", ["en", "es", "zh_CN"])
def test_a_payment_awaiting_authentication_offers_confirm_payment_first(locale: str) -> None:
    """The "Confirm payment" button carries the payment intent's client secret and posts
    to the confirm URL; the card form stays as the other way; the card is not flagged."""
    t = MESSAGES[locale]
    confirm = pages.ConfirmForm("pi_1_secret_y", "/pay/t/confirm")
    html = pages.render_pay(
        _view(awaiting_action=True, locale=locale),
        locale=locale,
        brand=BRAND,
        form=FORM,
        result=None,
        confirm=confirm,
    ).html
    assert str(escape(t["action_button"])) in html and str(escape(t["action_intro"])) in html
    assert 'data-secret="pi_1_secret_y"' in html and 'action="/pay/t/confirm"' in html
    assert "confirmCardPayment" in html and "confirmCardSetup" in html
    assert str(escape(t["other_card"])) in html
    assert str(escape(t["card_failed"])) not in html

    plain = _pay(_view(), locale).html
    assert "confirmCardPayment" not in plain and "confirm-button" not in plain
    assert str(escape(t["new_card"])) in plain


@pytest.mark.parametrize("result", ["not_authenticated", "processing"])
def test_confirmation_outcomes_have_their_notice(result: str) -> None:
    key, _ = pages.NOTICES[result]
    assert str(escape(MESSAGES["en"][key])) in _pay(_view(), "en", result=result).html
