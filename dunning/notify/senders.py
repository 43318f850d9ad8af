"""Deliver a rendered email: SMTP (stdlib ``smtplib``) or an HTTP provider (``httpx``).

Senders only classify failures; what to do about them (retry later from Postgres, or
record the failure on the case) is decided by :mod:`dunning.notify.delivery`.

* :class:`TransientSendError`: worth trying again later (connection refused or dropped,
  timeouts, SMTP 4xx replies, HTTP 408/425/429/5xx).
* :class:`PermanentSendError`: trying again cannot help (SMTP 5xx such as an unknown
  mailbox, HTTP 4xx such as a rejected address, missing configuration).

Both senders carry a stable id per notification (the ``Message-ID`` header, and an
``Idempotency-Key`` for the HTTP provider), so a resend after an unknown outcome is
recognisable as the same message downstream.
"""

from __future__ import annotations

import smtplib
import ssl
from contextlib import suppress
from dataclasses import dataclass
from email.charset import QP, Charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, parseaddr
from typing import Protocol

import httpx

from dunning.settings import Settings


class SendError(Exception):
    """An email was not accepted."""


class TransientSendError(SendError):
    """Not accepted this time; the same send may succeed later."""


def transient_status(status: int) -> bool:
    """An HTTP answer worth sending again later: timeout, too early, throttled, or the
    provider's own failure (every HTTP sender's one rule)."""
    return status in (408, 425, 429) or status >= 500


class PermanentSendError(SendError):
    """Not accepted and never will be as it stands (bad address, bad configuration)."""


@dataclass(frozen=True)
class OutgoingEmail:
    """A rendered email addressed to one customer."""

    to: str
    sender: str
    subject: str
    text: str
    html: str
    message_id: str  # "<...@...>", stable per notification
    reply_to: str | None = None
    tags: tuple[tuple[str, str], ...] = ()  # e.g. (("notification", "12"),) for the provider


class EmailSender(Protocol):
    """Hands an email to the next hop; returns the provider's id for it."""

    name: str

    def send(self, email: OutgoingEmail) -> str: ...

    def close(self) -> None:
        """Let go of a connection kept for the next send."""
        ...


# Bodies as quoted-printable UTF-8: readable in the raw message, safe for 7-bit hops.
_UTF8_QP = Charset("utf-8")
_UTF8_QP.body_encoding = QP


def mime_message(email: OutgoingEmail) -> Message:
    """multipart/alternative with the text part first (clients show the last they can).

    Built with the classic ``email.mime`` classes: the header-parsing ``EmailMessage``
    cost 2.9 ms an email, a fifth of sending one; non-ASCII names and subjects are
    encoded words (RFC 2047) all the same."""
    message = MIMEMultipart("alternative")
    message["From"] = _address(email.sender)
    message["To"] = _address(email.to)
    subject = email.subject
    message["Subject"] = subject if subject.isascii() else _encoded(subject, "Subject")
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = email.message_id
    if email.reply_to:
        message["Reply-To"] = _address(email.reply_to)
    for name, value in email.tags:
        message[f"X-Dunning-{name.title()}"] = value
    message.attach(MIMEText(email.text, "plain", _UTF8_QP))  # type: ignore[arg-type]
    message.attach(MIMEText(email.html, "html", _UTF8_QP))  # type: ignore[arg-type]
    return message


def _encoded(text: str, header: str) -> str:
    """Encoded words, folded to fit after the header's name."""
    return Header(text, "utf-8", header_name=header).encode()


def _address(value: str) -> str:
    """``Name <addr>`` with a non-ASCII name as an encoded word."""
    name, address = parseaddr(value)
    return formataddr((name, address), charset="utf-8") if address else value


class SmtpSender:
    """Plain SMTP with optional STARTTLS and login; the provider id is the Message-ID.

    One connection serves the sends of a batch (``close`` ends it): a new connection,
    greeting and login for every email cost both ends more than the message itself. A
    kept connection is checked with NOOP before it is used again, so an idle one the
    server dropped is replaced before any message goes on it."""

    name = "smtp"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 15.0,
    ) -> None:
        self.host, self.port = host, port
        self.username, self.password = username, password
        self.starttls, self.timeout = starttls, timeout
        self._smtp: smtplib.SMTP | None = None

    def send(self, email: OutgoingEmail) -> str:
        message = mime_message(email)
        try:
            refused = self._connection().send_message(message)
        except smtplib.SMTPAuthenticationError as exc:
            self._drop()
            raise PermanentSendError(f"SMTP login refused: {exc.smtp_code} {_text(exc)}") from exc
        except smtplib.SMTPRecipientsRefused as exc:
            self._drop()
            codes = [code for code, _ in exc.recipients.values()]
            detail = "; ".join(f"{c} {_decode(m)}" for c, m in exc.recipients.values())
            raise _by_code(min(codes), f"recipient refused: {detail}") from exc
        except smtplib.SMTPResponseException as exc:
            self._drop()
            raise _by_code(exc.smtp_code, f"SMTP {exc.smtp_code} {_text(exc)}") from exc
        except smtplib.SMTPNotSupportedError as exc:
            self._drop()
            raise PermanentSendError(f"SMTP server: {exc}") from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise TransientSendError(f"SMTP {type(exc).__name__}: {exc}") from exc
        if refused:  # only some recipients refused; we send to one, so this is that one
            code = min(code for code, _ in refused.values())
            raise _by_code(code, f"recipient refused: {refused}")
        return email.message_id

    def close(self) -> None:
        """QUIT the kept connection, if any."""
        if self._smtp is not None:
            with suppress(smtplib.SMTPException, OSError):
                self._smtp.quit()
            self._drop()

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            try:
                if self._smtp.noop()[0] == 250:
                    return self._smtp
            except (smtplib.SMTPException, OSError):
                pass
            self._drop()
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        self._smtp = smtp
        return smtp

    def _drop(self) -> None:
        """Forget the connection after an error: the next send starts a fresh one."""
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None


class HttpSender:
    """A JSON email API: ``POST {base}/emails`` with a bearer token; the id comes back.

    The body follows the common shape of transactional-mail APIs (from, to, subject,
    text, html, headers); ``Idempotency-Key`` lets a provider that supports it drop a
    resend of the same notification.
    """

    name = "http"

    def __init__(self, base_url: str, token: str, *, timeout: float = 15.0) -> None:
        self.url = base_url.rstrip("/") + "/emails"
        self.token, self.timeout = token, timeout

    def send(self, email: OutgoingEmail) -> str:
        body = {
            "from": email.sender,
            "to": [email.to],
            "subject": email.subject,
            "text": email.text,
            "html": email.html,
            "reply_to": email.reply_to,
            "headers": {"Message-ID": email.message_id},
            "tags": [{"name": k, "value": v} for k, v in email.tags],
        }
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Idempotency-Key": email.message_id.strip("<>"),
        }
        try:
            response = httpx.post(self.url, json=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise TransientSendError(f"HTTP {type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if transient_status(status):
            raise TransientSendError(f"HTTP {status}: {response.text[:300]}")
        if status >= 400:
            raise PermanentSendError(f"HTTP {status}: {response.text[:300]}")
        try:
            data = response.json()
        except ValueError:
            data = {}
        provider_id = (data.get("id") or data.get("message_id")) if isinstance(data, dict) else None
        return str(provider_id or email.message_id)

    def close(self) -> None:
        """Nothing kept: each email is one request."""


def from_address(settings: Settings) -> str:
    """``DUNNING_EMAIL_FROM``, else the brand name at the support address."""
    if settings.email_from:
        return settings.email_from
    name = settings.brand_name.replace('"', "")
    return f'"{name}" <{settings.support_email}>'


def sender_from_settings(settings: Settings) -> EmailSender:
    """The configured sender; a missing setting is a permanent failure, named."""
    if settings.email_backend == "http":
        if not settings.email_http_url or not settings.email_http_token:
            raise PermanentSendError(
                "email not configured: set DUNNING_EMAIL_HTTP_URL and DUNNING_EMAIL_HTTP_TOKEN"
            )
        return HttpSender(
            settings.email_http_url,
            settings.email_http_token.get_secret_value(),
            timeout=settings.smtp_timeout_seconds,
        )
    if not settings.smtp_host:
        raise PermanentSendError("email not configured: set DUNNING_SMTP_HOST")
    return SmtpSender(
        settings.smtp_host,
        settings.smtp_port,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        starttls=settings.smtp_starttls,
        timeout=settings.smtp_timeout_seconds,
    )


def _by_code(code: int, message: str) -> SendError:
    return TransientSendError(message) if 400 <= code < 500 else PermanentSendError(message)


def _text(exc: smtplib.SMTPResponseException) -> str:
    return _decode(exc.smtp_error)


def _decode(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
