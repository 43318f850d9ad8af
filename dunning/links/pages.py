"""Rendering the pay page and its message pages, and what the browser may load.

Everything is server-rendered from the package's templates with inline CSS; the only
outside script is Stripe.js, which the Content-Security-Policy names and nothing
else. Message pages (invalid, expired, closed, paid, too many attempts) take no
account data at all, so they cannot leak any.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from babel import Locale
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from dunning.brand import Brand
from dunning.formatting import (
    card_brand_name,
    format_local_date,
    format_money,
    resolve_locale,
)
from dunning.links.customer import RenewalView
from dunning.links.messages import HTML_LANG, MESSAGES, STRIPE_JS_LOCALES, interval_text
from dunning.links.service import Card, CaseView
from dunning.links.thanks import ThankYou
from dunning.settings import Settings

STRIPE_JS_URL = "https://js.stripe.com/v3/"
_SANDBOX_HOSTS = ("127.0.0.1", "localhost", "::1")

# result query value -> (message key, notice style)
NOTICES = {
    "declined": ("result_declined", "bad"),
    "failed": ("result_failed", "bad"),
    "not_saved": ("result_not_saved", "bad"),
    "pending": ("result_pending", "info"),
    "unchanged": ("result_unchanged", "info"),
    "not_authenticated": ("result_not_authenticated", "bad"),
    "processing": ("result_processing", "info"),
    "needs_confirmation": ("result_needs_confirmation", "info"),
}
# The renewal page (a customer link without a case) saves cards and charges nothing.
RENEWAL_NOTICES = {
    "saved": ("result_saved", "ok"),
    "not_saved": ("result_not_saved", "bad"),
}


@cache
def _env() -> Environment:
    return Environment(
        loader=PackageLoader("dunning.links", "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
    )


def _sandbox_base(settings: Settings) -> str | None:
    """The Stripe-compatible sandbox on loopback (the demo), which serves its own Stripe.js."""
    base = settings.stripe_api_base
    if not base or not (settings.stripe_api_key or "").startswith("sk_test_"):
        return None
    return base.rstrip("/") if urlsplit(base).hostname in _SANDBOX_HOSTS else None


def stripe_js_url(settings: Settings) -> str:
    """``DUNNING_STRIPE_JS_URL``; else the loopback sandbox's copy; else Stripe's own."""
    if settings.stripe_js_url:
        return settings.stripe_js_url
    sandbox = _sandbox_base(settings)
    return f"{sandbox}/js.stripe.com/v3/" if sandbox else STRIPE_JS_URL


def publishable_key(settings: Settings) -> str | None:
    """``DUNNING_STRIPE_PUBLISHABLE_KEY``; the sandbox takes any ``pk_test_`` key."""
    if settings.stripe_publishable_key:
        return settings.stripe_publishable_key
    return "pk_test_sandbox" if _sandbox_base(settings) else None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def page_csp(js_url: str, nonce: str) -> str:
    """Only our inline script and Stripe.js run; card frames and calls go to Stripe only.

    The Stripe hosts are those Stripe's security guide lists for Stripe.js."""
    origin = _origin(js_url)
    if origin == _origin(STRIPE_JS_URL):
        script = f"'nonce-{nonce}' https://js.stripe.com https://*.js.stripe.com"
        connect = "'self' https://api.stripe.com"
        frame = "https://js.stripe.com https://*.js.stripe.com https://hooks.stripe.com"
        img = "'self' data: https://*.stripe.com"
    else:
        script, connect, frame, img = (
            f"'nonce-{nonce}' {origin}",
            f"'self' {origin}",
            origin,
            "'self' data:",
        )
    return (
        f"default-src 'none'; script-src {script}; connect-src {connect}; frame-src {frame}; "
        f"img-src {img}; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )


MESSAGE_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


def locale_from_header(accept_language: str | None) -> str:
    """The first of the browser's languages that the page speaks; ``en`` otherwise."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and tag != "*" and quality > 0:
            ranked.append((-quality, index, tag))
    for _, _, tag in sorted(ranked):
        resolved = resolve_locale(tag)
        if resolved.template_locale != "en" or tag.lower().startswith("en"):
            return resolved.template_locale
    return "en"


@dataclass(frozen=True)
class Rendered:
    html: str
    csp: str


def _render(template: str, locale: str, brand: Brand, **context: object) -> str:
    t = MESSAGES.get(locale, MESSAGES["en"])
    return (
        _env()
        .get_template(template)
        .render(t=t, html_lang=HTML_LANG.get(locale, "en"), brand=brand, **context)
    )


def render_message(kind: str, locale: str, brand: Brand, retry_url: str | None = None) -> Rendered:
    """A page with a title and a sentence, and nothing about anyone's account."""
    t = MESSAGES.get(locale, MESSAGES["en"])
    html = _render(
        "message.html",
        locale,
        brand,
        title=t[f"{kind}_title"],
        body=t[f"{kind}_body"],
        retry_url=retry_url,
    )
    return Rendered(html, MESSAGE_CSP)


def render_thanks(thanks: ThankYou, locale: str, brand: Brand) -> Rendered:
    """The thank-you right after a payment: the card charged and the next renewal, in the
    customer's language, date format and time zone."""
    t = MESSAGES.get(locale, MESSAGES["en"])
    details: list[tuple[str, str]] = []
    card = _card_text(Card(thanks.card_brand, thanks.card_last4, None, None), t)
    if card:
        details.append(("paid-card", t["paid_card"].format(card=card)))
    if thanks.renews_at is not None:
        fmt = resolve_locale(thanks.locale or locale).format_locale
        day = format_local_date(thanks.renews_at, thanks.time_zone, fmt)
        details.append(("next-renewal", t["paid_renewal"].format(date=day)))
    html = _render(
        "message.html",
        locale,
        brand,
        title=t["paid_title"],
        body=t["paid_body"],
        retry_url=None,
        details=details,
    )
    return Rendered(html, MESSAGE_CSP)


def render_outcome(outcome: str, locale: str, brand: Brand, retry_url: str) -> Rendered:
    """After the Billing Portal: what happened to the payment, with a way to try again."""
    if outcome == "paid":
        return render_message("paid", locale, brand)
    t = MESSAGES.get(locale, MESSAGES["en"])
    if outcome == "saved":
        html = _render(
            "message.html",
            locale,
            brand,
            title=t["saved_title"],
            body=t["result_saved"],
            retry_url=None,
        )
        return Rendered(html, MESSAGE_CSP)
    key, _ = NOTICES.get(outcome, NOTICES["failed"])
    html = _render(
        "message.html", locale, brand, title=t["heading"], body=t[key], retry_url=retry_url
    )
    return Rendered(html, MESSAGE_CSP)


def _card_text(card: Card | None, t: dict[str, str]) -> str | None:
    if card is None or not card.last4:
        return None
    text = t["card_ending"].format(brand=card_brand_name(card.brand) or "Card", last4=card.last4)
    if card.exp_month and card.exp_year:
        exp = f"{card.exp_month:02d}/{card.exp_year % 100:02d}"
        text += " · " + t["card_expires"].format(exp=exp)
    return text


def page_locale(view: CaseView | RenewalView | ThankYou, accept_language: str | None) -> str:
    """The customer's own locale when the ledger knows it, else the browser's."""
    if view.locale:
        return resolve_locale(view.locale).template_locale
    return locale_from_header(accept_language)


def _money(amount: int, currency: str, fmt: Locale) -> str:
    try:
        return format_money(amount, currency, fmt)
    except ValueError:
        return f"{amount / 100:.2f} {currency.upper()}"


@dataclass(frozen=True)
class CardForm:
    """What every page with the Stripe.js card form needs, besides its own content."""

    client_secret: str
    publishable_key: str
    stripe_js_url: str
    post_url: str


def _card_form_page(
    template: str,
    view: CaseView | RenewalView,
    notices: dict[str, tuple[str, str]],
    *,
    locale: str,
    brand: Brand,
    form: CardForm,
    result: str | None,
    **content: Any,
) -> Rendered:
    """Render a page with the plan, the card on file, a notice and the card form."""
    t = MESSAGES.get(locale, MESSAGES["en"])
    plan_parts = [view.plan_name or "", interval_text(locale, view.interval, view.interval_count)]
    notice_key, notice_kind = notices.get(result or "", (None, ""))
    nonce = secrets.token_urlsafe(16)
    html = _render(
        template,
        locale,
        brand,
        plan=" · ".join(p for p in plan_parts if p),
        card=_card_text(view.card, t),
        notice=t[notice_key] if notice_key else None,
        notice_kind=notice_kind,
        publishable_key=form.publishable_key,
        client_secret=form.client_secret,
        stripe_locale=STRIPE_JS_LOCALES.get(locale, "auto"),
        stripe_js_url=form.stripe_js_url,
        post_url=form.post_url,
        nonce=nonce,
        **content,
    )
    return Rendered(html, page_csp(form.stripe_js_url, nonce))


@dataclass(frozen=True)
class ConfirmForm:
    """The payment that waits for the customer to authenticate: Stripe.js confirms it
    with this client secret (the card on file), and the page posts its id here."""

    client_secret: str
    post_url: str


def render_pay(
    view: CaseView,
    *,
    locale: str,
    brand: Brand,
    form: CardForm,
    result: str | None,
    confirm: ConfirmForm | None = None,
) -> Rendered:
    """The update page: what is due, the plan, the card on file, and the card form; first
    a "Confirm payment" button when the payment waits for the customer to authenticate."""
    fmt = resolve_locale(view.locale or locale).format_locale
    return _card_form_page(
        "pay.html",
        view,
        NOTICES,
        locale=locale,
        brand=brand,
        form=form,
        result=result,
        amount=_money(view.amount, view.currency, fmt),
        card_failed=view.card_failed and confirm is None,
        confirm=confirm,
    )


def render_renewal(
    view: RenewalView, *, locale: str, brand: Brand, form: CardForm, result: str | None
) -> Rendered:
    """The renewal page: the next renewal's date and amount, the plan, the card on file
    (flagged when it expires first), and the card form; saving charges nothing."""
    fmt = resolve_locale(view.locale or locale).format_locale
    amount = (
        _money(view.amount, view.currency, fmt)
        if view.amount is not None and view.currency
        else None
    )
    return _card_form_page(
        "renewal.html",
        view,
        RENEWAL_NOTICES,
        locale=locale,
        brand=brand,
        form=form,
        result=result,
        amount=amount,
        renewal_date=format_local_date(view.renews_at, view.time_zone, fmt),
        card_expires_before_renewal=view.card_expires_before_renewal,
    )
