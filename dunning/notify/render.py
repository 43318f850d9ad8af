"""Render customer emails (subject, plain text, HTML) from the templates in ``email_templates/``.

Layout on disk: ``email_templates/<locale>/<template>/{subject.txt, body.txt, body.html}``
(and ``sms.txt``, the template's text message, rendered by :func:`render_sms`), one shared
layout in ``email_templates/_layout/`` and a few per-locale phrases and footers in
``email_templates/<locale>/_partials/``.

Two Jinja environments share one loader: the HTML one autoescapes everything it renders, the
text one nothing. Escaping is decided by what is being rendered, not by a file name, so a
shared macro can never leak unescaped customer data into HTML. Both are built once per
templates folder and cached; templates are compiled on first use and kept.

Rendering is strict: every template declares the variables it needs in
:data:`TEMPLATE_VARIABLES`, a missing one raises :class:`MissingVariableError` naming the
template and the variable, and anything else undefined fails the same way (StrictUndefined)
instead of printing an empty string into a customer's inbox.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from babel import Locale
from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    UndefinedError,
    pass_context,
)
from jinja2.runtime import Context

from dunning.brand import Brand, require_http_url
from dunning.formatting import (
    DEFAULT_LOCALE,
    LOCALES,
    ResolvedLocale,
    card_brand_name,
    format_local_date,
    format_money,
    format_month_year,
    resolve_locale,
)
from dunning.templates import TEMPLATES_DIR, template_names

__all__ = [
    "DEFAULT_TEMPLATES_DIR",
    "END_ACTIONS",
    "LOCALES",
    "PAYMENT_LINK_TEMPLATES",
    "TEMPLATES",
    "TEMPLATE_VARIABLES",
    "Brand",
    "EmailTemplateError",
    "MissingVariableError",
    "RenderedEmail",
    "RenderedSms",
    "UnknownTemplateError",
    "render_email",
    "render_sms",
    "sample_context",
]

DEFAULT_TEMPLATES_DIR = TEMPLATES_DIR

TEMPLATES: tuple[str, ...] = template_names()

_MONEY = ("amount", "currency")
# The contract with callers: what each template needs in ``context``. Extra keys are ignored.
#   customer_name   str | None   greeting falls back to "Hi there" when empty
#   plan_name       str          shown as is (product names are not translated)
#   amount          int          processor minor units (Stripe's convention: 4900 = $49.00,
#                                500 = ¥500); never a float
#   currency        str          ISO 4217 code, any case
#   due_date, end_date, renewal_date
#                   datetime     aware; shown as a date in ``time_zone``
#   time_zone       str          IANA name of the customer's zone, e.g. "Asia/Shanghai"
#   update_url      str          absolute http(s) URL of the signed self-serve page
#   card_brand      str | None   processor brand code ("visa", "amex", "unknown", ...)
#   card_last4      str          last four digits
#   card_exp_month, card_exp_year  int
#   attempt_number  int          failed charge attempts so far
#   days_before     int          days between this reminder and the renewal
#   end_action      str          one of END_ACTIONS: what happens on end_date
TEMPLATE_VARIABLES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "payment_failed": (
            "customer_name",
            "plan_name",
            *_MONEY,
            "card_brand",
            "card_last4",
            "update_url",
        ),
        "payment_reminder": (
            "customer_name",
            "plan_name",
            *_MONEY,
            "due_date",
            "time_zone",
            "attempt_number",
            "update_url",
        ),
        "final_notice": (
            "customer_name",
            "plan_name",
            *_MONEY,
            "end_date",
            "end_action",
            "time_zone",
            "update_url",
        ),
        # card_brand, card_last4 and renewal_date may be None (not known, or no renewal).
        "payment_recovered": (
            "customer_name",
            "plan_name",
            *_MONEY,
            "card_brand",
            "card_last4",
            "renewal_date",
            "time_zone",
        ),
        "subscription_canceled": ("customer_name", "plan_name", *_MONEY, "end_date", "time_zone"),
        "renewal_reminder": (
            "customer_name",
            "plan_name",
            *_MONEY,
            "renewal_date",
            "days_before",
            "time_zone",
            "card_brand",
            "card_last4",
            "update_url",
        ),
        "card_expiring": (
            "customer_name",
            "plan_name",
            "card_brand",
            "card_last4",
            "card_exp_month",
            "card_exp_year",
            "update_url",
        ),
        "action_required": ("customer_name", "plan_name", *_MONEY, "update_url"),
    }
)

# Emails that must carry the update-payment link (button in HTML, bare URL in text).
PAYMENT_LINK_TEMPLATES: frozenset[str] = frozenset(TEMPLATES) - {
    "payment_recovered",
    "subscription_canceled",
}
# What the final notice can announce; the policy's end action maps onto one of these.
END_ACTIONS: tuple[str, ...] = ("cancel", "pause", "mark_unpaid")

_UNDEFINED_NAME = re.compile(r"'([^']+)' is undefined")


class EmailTemplateError(Exception):
    """Base class: something about the template or its context is wrong (a caller bug)."""


class UnknownTemplateError(EmailTemplateError, LookupError):
    """No such template, in the requested locale nor in the English fallback."""


class MissingVariableError(EmailTemplateError, KeyError):
    """The context lacks variables the template needs; names the template and the variables."""

    def __init__(self, template: str, locale: str, variables: tuple[str, ...], detail: str = ""):
        self.template = template
        self.locale = locale
        self.variables = variables
        names = ", ".join(variables)
        message = f"email template {template!r} ({locale}) is missing variable(s): {names}"
        super().__init__(f"{message} ({detail})" if detail else message)

    def __str__(self) -> str:  # KeyError would repr() the message; keep it readable
        return str(self.args[0])


@dataclass(frozen=True)
class RenderedEmail:
    """A rendered email; ``locale`` is the translation actually used after fallback."""

    subject: str
    text: str
    html: str
    locale: str


def render_email(
    template: str,
    locale: str | None,
    context: Mapping[str, Any],
    *,
    brand: Brand,
    templates_dir: Path | None = None,
) -> RenderedEmail:
    """Render ``template`` for a customer whose locale is ``locale`` (``None`` -> English).

    ``es_MX`` uses the Spanish templates with Mexican number formats; a locale without a
    translation (``fr``) gets English. Raises :class:`MissingVariableError` for an incomplete
    context and :class:`UnknownTemplateError` for a template that does not exist.
    """
    root = DEFAULT_TEMPLATES_DIR if templates_dir is None else templates_dir.resolve()
    resolved = _resolve(root, template, locale)
    loc = resolved.template_locale
    _check_context(template, loc, context)

    text_env, html_env = _environments(root)
    values: dict[str, Any] = dict(context)
    values.update(
        brand=brand,
        template_locale=loc,
        format_locale=resolved.format_locale,
        html_lang=loc.replace("_", "-"),
    )
    base = f"{loc}/{template}"
    try:
        raw_subject = text_env.get_template(f"{base}/subject.txt").render(values)
        subject = " ".join(raw_subject.split())
        values["subject"] = subject
        text = _tidy_text(text_env.get_template(f"{base}/body.txt").render(values))
        html = html_env.get_template(f"{base}/body.html").render(values)
    except UndefinedError as exc:
        match = _UNDEFINED_NAME.search(exc.message or "")
        names = (match.group(1),) if match else ()
        raise MissingVariableError(template, loc, names, exc.message or "") from exc
    return RenderedEmail(subject=subject, text=text, html=html, locale=loc)


@dataclass(frozen=True)
class RenderedSms:
    """A rendered text message: one line (SMS has no layout); ``locale`` as used."""

    text: str
    locale: str


def render_sms(
    template: str,
    locale: str | None,
    context: Mapping[str, Any],
    *,
    brand: Brand,
    templates_dir: Path | None = None,
) -> RenderedSms:
    """Render ``<locale>/<template>/sms.txt``, with the same context and fallback as the email.

    Whitespace collapses to single spaces, no-break spaces from number formats included:
    one character outside GSM-7 would make the message UCS-2 and cost twice the segments.
    """
    root = DEFAULT_TEMPLATES_DIR if templates_dir is None else templates_dir.resolve()
    resolved = _resolve(root, template, locale, _SMS_FILES)
    loc = resolved.template_locale
    _check_context(template, loc, context)
    text_env, _ = _environments(root)
    values = {**context, "brand": brand, "template_locale": loc}
    values["format_locale"] = resolved.format_locale
    try:
        raw = text_env.get_template(f"{loc}/{template}/{_SMS_FILES[0]}").render(values)
    except UndefinedError as exc:
        match = _UNDEFINED_NAME.search(exc.message or "")
        names = (match.group(1),) if match else ()
        raise MissingVariableError(template, loc, names, exc.message or "") from exc
    return RenderedSms(text=" ".join(raw.split()), locale=loc)


def has_sms(template: str, templates_dir: Path | None = None) -> bool:
    """Whether ``template`` has a text message (in English, the fallback of every locale)."""
    root = DEFAULT_TEMPLATES_DIR if templates_dir is None else templates_dir.resolve()
    return _has_template(root, DEFAULT_LOCALE, template, _SMS_FILES)


def sample_context(template: str) -> dict[str, Any]:
    """Realistic context for ``template`` (exactly its declared variables), for previews,
    tests and benchmarks. Returns a fresh dict the caller may modify."""
    try:
        names = TEMPLATE_VARIABLES[template]
    except KeyError:
        raise UnknownTemplateError(f"unknown email template {template!r}") from None
    return {name: _SAMPLE[name] for name in names}


_SAMPLE: Mapping[str, Any] = MappingProxyType(
    {
        "customer_name": "Jordan Lee",
        "plan_name": "Pro",
        "amount": 4900,
        "currency": "USD",
        "due_date": datetime(2025, 3, 3, 15, 0, tzinfo=UTC),
        "end_date": datetime(2025, 3, 24, 15, 0, tzinfo=UTC),
        "renewal_date": datetime(2025, 4, 1, 15, 0, tzinfo=UTC),
        "time_zone": "America/New_York",
        "update_url": "https://billing.example.com/pay/cus_9s6XKzkNRiz8i3?t=sample-token",
        "card_brand": "visa",
        "card_last4": "4242",
        "card_exp_month": 4,
        "card_exp_year": 2025,
        "attempt_number": 3,
        "days_before": 7,
        "end_action": "cancel",
    }
)


def _check_context(template: str, locale: str, context: Mapping[str, Any]) -> None:
    """Fail before rendering, with every missing name at once, not at the first ``{{ }}``."""
    required = TEMPLATE_VARIABLES.get(template, ())
    missing = tuple(name for name in required if name not in context)
    if missing:
        raise MissingVariableError(template, locale, missing)
    if "update_url" in context:
        require_http_url(context["update_url"], "update_url")
    if "end_action" in context and context["end_action"] not in END_ACTIONS:
        raise EmailTemplateError(
            f"email template {template!r}: end_action must be one of {END_ACTIONS}, "
            f"got {context['end_action']!r}"
        )


def _tidy_text(text: str) -> str:
    """Strip trailing spaces and collapse blank-line runs left by template tags."""
    lines: list[str] = []
    for line in text.splitlines():
        line = line.rstrip()
        if line or (lines and lines[-1]):
            lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n"


_EMAIL_FILES = ("subject.txt", "body.txt", "body.html")
_SMS_FILES = ("sms.txt",)


@lru_cache(maxsize=256)
def _resolve(
    root: Path, template: str, locale: str | None, files: tuple[str, ...] = _EMAIL_FILES
) -> ResolvedLocale:
    """Best translation of ``template`` for ``locale``; cached since files don't change."""
    available = tuple(loc for loc in LOCALES if _has_template(root, loc, template, files))
    if DEFAULT_LOCALE not in available:
        where = f"{root}/{DEFAULT_LOCALE}/{template}/"
        raise UnknownTemplateError(f"unknown email template {template!r} (nothing in {where})")
    return resolve_locale(locale, available)


def _has_template(
    root: Path, locale: str, template: str, files: tuple[str, ...] = _EMAIL_FILES
) -> bool:
    return "/" not in template and all((root / locale / template / n).is_file() for n in files)


@lru_cache(maxsize=8)
def _environments(root: Path) -> tuple[Environment, Environment]:
    """(text, html) environments for a templates folder, built once."""
    loader = FileSystemLoader(str(root), encoding="utf-8")
    options: dict[str, Any] = {
        "loader": loader,
        "undefined": StrictUndefined,
        "trim_blocks": True,
        "lstrip_blocks": True,
        "keep_trailing_newline": False,
        "auto_reload": False,  # templates ship with the code; skip a stat() per render
        "cache_size": 1000,
    }
    text_env = Environment(autoescape=False, **options)
    html_env = Environment(autoescape=True, **options)
    for env in (text_env, html_env):
        env.filters.update(
            money=_money_filter,
            date=_date_filter,
            month_year=_month_year_filter,
            card_brand=card_brand_name,
        )
    return text_env, html_env


@pass_context
def _money_filter(ctx: Context, amount: int, currency: str) -> str:
    """``{{ amount|money(currency) }}`` in the customer's number format."""
    return format_money(amount, currency, _format_locale(ctx))


@pass_context
def _date_filter(ctx: Context, moment: datetime) -> str:
    """``{{ due_date|date }}``: the calendar day in the customer's ``time_zone``."""
    time_zone = ctx.resolve_or_missing("time_zone")
    if not isinstance(time_zone, str):
        raise UndefinedError("'time_zone' is undefined")
    return format_local_date(moment, time_zone, _format_locale(ctx))


@pass_context
def _month_year_filter(ctx: Context, month: int, year: int) -> str:
    """``{{ card_exp_month|month_year(card_exp_year) }}`` -> ``April 2025``."""
    return format_month_year(month, year, _format_locale(ctx))


def _format_locale(ctx: Context) -> Locale:
    value = ctx.resolve_or_missing("format_locale")
    return value if isinstance(value, Locale) else Locale.parse(DEFAULT_LOCALE)
