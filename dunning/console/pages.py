"""Rendering console pages: one Jinja environment, the filters, the response headers.

Why headers on every page: the console shows customer data and carries ops' session,
so nothing is cached, nothing frames it, and only this server's scripts, styles and
forms run (the CSP also covers the email previews shown in sandboxed frames).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

from dunning.formatting import card_brand_name, format_money
from dunning.timezones import customer_zone

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: https:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; frame-src 'self'; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'none'"
    ),
}


def money(amount: int | None, currency: str | None) -> str:
    """``$49.00``; a dash when the amount or currency is unknown."""
    if amount is None or not currency:
        return "—"
    try:
        return format_money(int(amount), currency, "en")
    except ValueError:
        return f"{amount} {currency.upper()}"


def when(moment: datetime | None, seconds: bool = False) -> str:
    """A moment in UTC, ``2026-03-03 14:00 UTC``; a dash for none."""
    if moment is None:
        return "—"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    fmt = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    return f"{moment.astimezone(UTC):{fmt}} UTC"


def local(moment: datetime | None, zone: str | None) -> str:
    """A moment in a zone, ``Tue 2026-03-24 06:00 EDT`` (an unknown zone shows UTC)."""
    if moment is None:
        return "—"
    return f"{moment.astimezone(customer_zone(zone)):%a %Y-%m-%d %H:%M %Z}"


def relative(moment: datetime | None, now: datetime | None = None) -> str:
    """``in 3 h`` / ``2 d ago``: how far a moment is from now, roughly."""
    if moment is None:
        return ""
    now = now or datetime.now(UTC)
    seconds = (moment - now).total_seconds()
    size = abs(seconds)
    if size < 90:
        text = "now" if size < 30 else "1 min"
    elif size < 5400:
        text = f"{round(size / 60)} min"
    elif size < 172800:
        text = f"{round(size / 3600)} h"
    else:
        text = f"{round(size / 86400)} d"
    if text == "now":
        return text
    return f"in {text}" if seconds > 0 else f"{text} ago"


_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.filters.update(
    money=money,
    when=when,
    local=local,
    relative=relative,
    card_brand=card_brand_name,
)


def render_html(template: str, **context: Any) -> str:
    """A console template rendered with ``context``."""
    return _env.get_template(template).render(**context)


def page(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A console page with the security headers."""
    return HTMLResponse(render_html(template, **context), status, headers=SECURITY_HEADERS)
