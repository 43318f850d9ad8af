"""Email previews for ops (``/api/emails/preview/{template}``) and the demo's outbox pages.

The preview renders any template with sample data in any locale, exactly as the
workers would (same renderer, same brand settings). The outbox (``/outbox``) lists
what the demo's local SMTP sink caught, and the demo's text messages (SMS), which the
workers write to the same folder; it exists only in the demo, where ``dunning run``
started the sink (``DUNNING_EMAIL_SINK``).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from dunning.admin.auth import ReaderActor
from dunning.notify.render import TEMPLATES, UnknownTemplateError, render_email, sample_context
from dunning.notify.sink import StoredEmail, list_emails, outbox_dir, read_email
from dunning.settings import get_settings

router = APIRouter(tags=["emails"])

_URL = re.compile(r"https?://[^\s<>\"']+")
_STYLE = (
    "body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;"
    "background:#f4f5f7;color:#1a1a1a}main{max-width:980px;margin:0 auto;padding:16px}"
    "table{width:100%;border-collapse:collapse;background:#fff}td,th{padding:8px 10px;"
    "border-bottom:1px solid #e5e7eb;text-align:left;font-size:14px}a{color:#4f46e5}"
    "pre{white-space:pre-wrap;background:#fff;padding:12px;border:1px solid #e5e7eb}"
    "iframe{width:100%;height:640px;border:1px solid #e5e7eb;background:#fff}"
    ".meta{font-size:14px;color:#4b5563}"
)


class EmailPreview(BaseModel):
    template: str
    locale: str
    subject: str
    text: str
    html: str


def preview(template: str, locale: str | None) -> EmailPreview:
    """Render ``template`` with sample data (shared by the API and the CLI)."""
    if template not in TEMPLATES:
        raise UnknownTemplateError(f"unknown email template {template!r}")
    email = render_email(
        template, locale, sample_context(template), brand=get_settings().branding()
    )
    return EmailPreview(
        template=template,
        locale=email.locale,
        subject=email.subject,
        text=email.text,
        html=email.html,
    )


@router.get("/api/emails/preview/{template}", response_model=EmailPreview)
def preview_email(template: str, actor: ReaderActor, locale: str = "en") -> EmailPreview:
    """A template rendered with sample data: subject, text and HTML parts."""
    try:
        return preview(template, locale)
    except UnknownTemplateError:
        raise HTTPException(404, f"no email template {template!r}; one of {TEMPLATES}") from None


def _outbox() -> Path:
    settings = get_settings()
    if not (settings.demo and settings.email_sink):
        raise HTTPException(404, "the outbox exists only in the demo (dunning run)")
    return outbox_dir(settings.data_dir)


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>",
        headers={"Cache-Control": "no-store"},
    )


@router.get("/outbox", response_class=HTMLResponse, include_in_schema=False)
def outbox() -> HTMLResponse:
    """Every email and text the demo sent, newest first."""
    emails = list_emails(_outbox())
    rows = "".join(
        f"<tr><td>{e.received_at:%Y-%m-%d %H:%M:%S} UTC</td><td>{html.escape(e.channel)}</td>"
        f"<td>{html.escape(e.to)}</td>"
        f'<td><a href="/outbox/{e.id}">{html.escape(_title(e)) or "(no subject)"}</a></td></tr>'
        for e in emails
    )
    empty = "<p>No emails yet. The first dunning email arrives once a case opens.</p>"
    table = (
        "<table><tr><th>Received</th><th>Channel</th><th>To</th><th>Subject</th></tr>"
        + rows
        + "</table>"
        if emails
        else empty
    )
    count = f"{len(emails)} messages"
    return _page("Outbox", f'<h1>Outbox</h1><p class="meta">{count}</p>{table}')


def _title(email: StoredEmail) -> str:
    """The subject of an email; the start of a text, which has none."""
    if email.channel == "sms":
        text = " ".join(email.text.split())
        return text if len(text) <= 80 else text[:79] + "…"
    return email.subject


@router.get("/outbox/{message_id}", response_class=HTMLResponse, include_in_schema=False)
def outbox_email(message_id: str) -> HTMLResponse:
    """One email: its headers, the HTML part as the customer sees it, and the text part."""
    email = read_email(_outbox(), message_id)
    if email is None:
        raise HTTPException(404, "no such email")
    return _page(email.subject, _email_body(email))


def _email_body(email: StoredEmail) -> str:
    links = sorted(set(_URL.findall(email.text)))
    link_list = "".join(
        f'<li><a href="{html.escape(url)}" target="_blank" rel="noopener">'
        f"{html.escape(url)}</a></li>"
        for url in links
    )
    rendered = (
        '<iframe title="HTML part" sandbox="allow-popups allow-popups-to-escape-sandbox" '
        f'srcdoc="{html.escape(email.html, quote=True)}"></iframe>'
        if email.html
        else ""
    )
    return (
        '<p><a href="/outbox">&larr; Outbox</a></p>'
        f"<h1>{html.escape(email.subject)}</h1>"
        f'<p class="meta">From {html.escape(email.sender)} to {html.escape(email.to)}, '
        f"received {email.received_at:%Y-%m-%d %H:%M:%S} UTC</p>"
        + (f"<h2>Links</h2><ul>{link_list}</ul>" if links else "")
        + rendered
        + f"<h2>{'Text message' if email.channel == 'sms' else 'Text part'}</h2>"
        + f"<pre>{html.escape(email.text)}</pre>"
    )
