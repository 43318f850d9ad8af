"""Telling ops about an alert: an email to ``DUNNING_ALERT_EMAILS`` and a JSON POST to
``DUNNING_ALERT_WEBHOOK_URL`` (Slack's incoming webhooks read its ``text``).

Each is called with no transaction open. A failure raises ``AlertNotSent``; the
episode stays unsent and the next check tries again.
"""

from __future__ import annotations

import html
import json
import socket
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from dunning.notify.senders import OutgoingEmail, SendError, from_address, sender_from_settings
from dunning.notify.sequence import emails_enabled
from dunning.settings import Settings

CONSOLE_PATH = "/console/alerts"
WEBHOOK_TIMEOUT = 10.0


class AlertNotSent(Exception):
    """A channel did not accept the alert this time."""


@dataclass(frozen=True)
class Alert:
    """One episode of a condition, as it is told."""

    condition: str
    episode: int
    summary: str
    details: dict[str, Any]
    fired_at: datetime

    def console_url(self, settings: Settings) -> str:
        return f"{settings.public_base}{CONSOLE_PATH}#{self.condition}"


def email_channel(settings: Settings) -> bool:
    return bool(settings.alert_emails) and emails_enabled(settings)


def webhook_channel(settings: Settings) -> bool:
    return bool(settings.alert_webhook_url)


def _lines(alert: Alert) -> list[str]:
    return [f"{key.replace('_', ' ')}: {value}" for key, value in alert.details.items()]


def send_email(alert: Alert, settings: Settings) -> None:
    """One email per address, each with a Message-ID stable for the episode."""
    url = alert.console_url(settings)
    subject = f"[{settings.brand_name} dunning] Alert: {alert.summary}"
    text = "\n".join(
        [
            alert.summary,
            "",
            f"Since {alert.fired_at:%Y-%m-%d %H:%M} UTC.",
            *_lines(alert),
            "",
            f"Console: {url}",
            "",
            "You get this once; the next comes only after the condition has cleared.",
        ]
    )
    body = "".join(f"<p>{html.escape(line)}</p>" for line in text.split("\n") if line)
    body = body.replace(html.escape(url), f'<a href="{html.escape(url)}">{html.escape(url)}</a>')
    try:
        sender = sender_from_settings(settings)
    except SendError as exc:
        raise AlertNotSent(f"email: {exc}") from exc
    host = socket.getfqdn() or "dunning"
    with closing(sender):
        for n, address in enumerate(settings.alert_emails):
            email = OutgoingEmail(
                to=address,
                sender=from_address(settings),
                subject=subject,
                text=text + "\n",
                html=f"<!doctype html><html><body>{body}</body></html>",
                message_id=f"<alert.{alert.condition}.{alert.episode}.{n}@{host}>",
                tags=(("alert", alert.condition),),
            )
            try:
                sender.send(email)
            except SendError as exc:
                raise AlertNotSent(f"email to {address}: {exc}") from exc


def webhook_body(alert: Alert, settings: Settings) -> dict[str, Any]:
    """Slack-compatible (``text``) with the alert's fields for any other receiver."""
    url = alert.console_url(settings)
    return {
        "text": f"Dunning alert: {alert.summary} "
        f"(since {alert.fired_at:%Y-%m-%d %H:%M} UTC) <{url}>",
        "alert": {
            "condition": alert.condition,
            "status": "firing",
            "episode": alert.episode,
            "summary": alert.summary,
            "details": alert.details,
            "fired_at": alert.fired_at.isoformat(),
            "console_url": url,
        },
    }


def send_webhook(alert: Alert, settings: Settings) -> None:
    """POST the JSON; any 2xx is delivered."""
    assert settings.alert_webhook_url
    body = json.dumps(webhook_body(alert, settings), default=str)
    try:
        response = httpx.post(
            settings.alert_webhook_url,
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=WEBHOOK_TIMEOUT,
        )
    except httpx.HTTPError as exc:
        raise AlertNotSent(f"webhook: {type(exc).__name__}: {exc}") from exc
    if not response.is_success:
        raise AlertNotSent(f"webhook: HTTP {response.status_code}: {response.text[:200]}")
