"""Deliver a text message: Twilio's Messages API over ``httpx``, or the demo's outbox.

Twilio takes no idempotency key, so nothing downstream drops a repeated send: the
notification row claimed before the send and marked sent after (``notify.delivery``)
is the only guard. Failures are classified with the email senders' exceptions, so
delivery treats both channels alike: HTTP 408/429/5xx and network errors are
transient, other 4xx (a number Twilio cannot reach, bad credentials) permanent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from dunning.notify.senders import PermanentSendError, TransientSendError, transient_status
from dunning.notify.sink import outbox_dir, store_sms
from dunning.settings import Settings

log = logging.getLogger(__name__)

TWILIO = "twilio"
OUTBOX = "outbox"
_REQUIRED = ("sms_account_sid", "sms_auth_token", "sms_from")


@dataclass(frozen=True)
class OutgoingSms:
    """A rendered text message addressed to one E.164 number."""

    to: str
    text: str


class RecipientOptedOut(PermanentSendError):
    """Twilio refuses the number: it replied STOP to Twilio itself (error 21610)."""


class SmsSender(Protocol):
    """Hands a text message to the next hop; returns the provider's id for it."""

    name: str

    def send(self, sms: OutgoingSms) -> str: ...


class TwilioSender:
    """``POST {base}/2010-04-01/Accounts/{sid}/Messages.json`` (form: To, From, Body)."""

    name = TWILIO

    def __init__(
        self, base_url: str, account_sid: str, auth_token: str, sender: str, timeout: float = 15.0
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.auth = (account_sid, auth_token)
        self.sender, self.timeout = sender, timeout

    def send(self, sms: OutgoingSms) -> str:
        # A Messaging Service sid (MG...) picks the sending number itself.
        origin = "MessagingServiceSid" if self.sender.startswith("MG") else "From"
        form = {"To": sms.to, origin: self.sender, "Body": sms.text}
        try:
            response = httpx.post(self.url, data=form, auth=self.auth, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise TransientSendError(f"Twilio {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if transient_status(status):
            raise TransientSendError(f"Twilio HTTP {status}: {_problem(response)}")
        if status >= 400:
            problem = _problem(response)
            refused = RecipientOptedOut if problem.startswith("21610 ") else PermanentSendError
            raise refused(f"Twilio HTTP {status}: {problem}")
        try:
            sid = response.json().get("sid")
        except (ValueError, AttributeError):
            sid = None
        if not sid:
            raise PermanentSendError(f"Twilio answered {status} without a message sid")
        return str(sid)


class OutboxSender:
    """The demo's sink: the message lands in the outbox folder the /outbox page lists."""

    name = OUTBOX

    def __init__(self, folder: Path, sender: str) -> None:
        self.folder, self.sender = folder, sender

    def send(self, sms: OutgoingSms) -> str:
        return store_sms(self.folder, sms.to, self.sender, sms.text)


def missing_settings(settings: Settings) -> list[str]:
    """The Twilio settings that are not set, as environment variable names."""
    return [f"DUNNING_{name.upper()}" for name in _REQUIRED if not getattr(settings, name)]


def sms_backend(settings: Settings) -> str | None:
    """``twilio`` when configured, ``outbox`` in the demo with its sink, else None."""
    if not missing_settings(settings):
        return TWILIO
    if settings.demo and settings.email_sink:
        return OUTBOX
    return None


def not_configured(settings: Settings) -> str:
    """Why SMS cannot be sent, as the skipped notification records it."""
    return "SMS not configured: set " + ", ".join(missing_settings(settings))


def sms_sender_from_settings(settings: Settings) -> SmsSender:
    """The configured sender; without one, a permanent failure that says what to set."""
    backend = sms_backend(settings)
    if backend == TWILIO:
        assert settings.sms_account_sid and settings.sms_auth_token and settings.sms_from
        return TwilioSender(
            settings.sms_base_url,
            settings.sms_account_sid,
            settings.sms_auth_token.get_secret_value(),
            settings.sms_from,
            timeout=settings.smtp_timeout_seconds,
        )
    if backend == OUTBOX:
        return OutboxSender(outbox_dir(settings.data_dir), settings.sms_from or settings.brand_name)
    raise PermanentSendError(not_configured(settings))


def warn_if_unconfigured(settings: Settings) -> None:
    """At start-up: policy steps on the SMS channel will be recorded skipped, say so once."""
    if sms_backend(settings) is None:
        log.warning(
            '%s; policy steps with channel "sms" will be recorded as skipped',
            not_configured(settings),
        )


def _problem(response: httpx.Response) -> str:
    """Twilio's error code and message (``{"code": 21211, "message": ...}``), else the body."""
    try:
        body = response.json()
        return f"{body['code']} {body['message']}"
    except (ValueError, KeyError, TypeError):
        return response.text[:300]
