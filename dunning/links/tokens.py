"""Signed, expiring self-serve links: ``{DUNNING_PUBLIC_URL}/pay/<token>``.

The link is the customer's only credential (no login), so it must be unforgeable,
short-lived and narrow (docs/architecture.md). A token is one URL-safe base64 string
(no padding) of ``payload || tag``:

    payload = version (1 byte, 2) | scope (1 byte: 1 case, 2 customer)
              | expires_at (uint32, Unix seconds)
              | case id (uint64; 0 in a customer link) | notification id (uint64, 0 = none)
              | customer id (UTF-8, the rest)
    tag     = HMAC-SHA256(secret, "dunning-link\\0" || payload), first 16 bytes

Two scopes: a **case** link (``make_link``) opens one dunning case of one customer;
a **customer** link (``make_customer_link``) opens the customer's next renewal, for
emails that have no case (renewal reminders, card-expiring notices). The scope is
signed with the rest, so neither can be turned into the other, and reading a token
gives a different type for each (``LinkClaims``, ``CustomerLinkClaims``).

Version 1 tokens (``version | expires_at | case id | notification id | customer id``,
case links only, made before customer links existed) are still read, so links in
emails already sent keep working until they expire; any other version is refused as
malformed.

About 76 characters for a Stripe customer id. Nothing in it is secret (ids and a
date); what matters is that only the service can make one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from dunning.settings import Settings, get_settings

VERSION = 2
LEGACY_VERSION = 1
SCOPE_CASE = 1
SCOPE_CUSTOMER = 2
_HEADER = struct.Struct(">BBIQQ")  # version, scope, expires_at, case id, notification id
_LEGACY_HEADER = struct.Struct(">BIQQ")  # version 1: no scope byte, always a case
_TAG_BYTES = 16
_CONTEXT = b"dunning-link\x00"
_MAX_TOKEN_CHARS = 512
_MAX_CUSTOMER_ID_BYTES = 255
SECRET_FILE = "link-secret"


class LinkError(ValueError):
    """A token that opens nothing; ``reason`` picks the page the customer sees."""

    reason = "invalid"


class MalformedLink(LinkError):
    """Not a token at all: cut short, mangled by a mail client, wrong version."""

    reason = "malformed"


class TamperedLink(LinkError):
    """A well-formed token whose signature does not verify (edited, or another secret)."""

    reason = "tampered"


class ExpiredLink(LinkError):
    """A genuine token past its expiry."""

    reason = "expired"


@dataclass(frozen=True)
class LinkClaims:
    """What a verified case link grants: one case of one customer, until ``expires_at``."""

    case_id: int
    customer_id: str
    notification_id: int | None
    expires_at: datetime


@dataclass(frozen=True)
class CustomerLinkClaims:
    """What a verified customer link grants: one customer's card and next renewal (no
    case), until ``expires_at``. ``notification_id`` names the email it came in, which
    also says which subscription the email was about."""

    customer_id: str
    notification_id: int | None
    expires_at: datetime


Claims = LinkClaims | CustomerLinkClaims


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64encode(raw) != text:  # unused trailing bits: one token, one spelling
        raise ValueError("non-canonical base64")
    return raw


def _tag(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, _CONTEXT + payload, hashlib.sha256).digest()[:_TAG_BYTES]


def _sign(
    scope: int,
    case_id: int,
    customer_id: str,
    notification_id: int | None,
    secret: bytes,
    expires_at: datetime,
) -> str:
    customer = customer_id.encode("utf-8")
    if not customer or len(customer) > _MAX_CUSTOMER_ID_BYTES:
        raise ValueError("customer id must be 1 to 255 bytes")
    if notification_id is not None and notification_id <= 0:
        raise ValueError("notification ids are positive integers")
    header = _HEADER.pack(
        VERSION, scope, int(expires_at.timestamp()), case_id, notification_id or 0
    )
    payload = header + customer
    return _b64encode(payload + _tag(secret, payload))


def make_token(
    case_id: int,
    customer_id: str,
    notification_id: int | None,
    *,
    secret: bytes,
    expires_at: datetime,
) -> str:
    """Sign a case link: one case of one customer, valid until ``expires_at``."""
    if case_id <= 0:
        raise ValueError("case ids are positive integers")
    return _sign(SCOPE_CASE, case_id, customer_id, notification_id, secret, expires_at)


def make_customer_token(
    customer_id: str,
    notification_id: int | None,
    *,
    secret: bytes,
    expires_at: datetime,
) -> str:
    """Sign a customer link (no case): one customer, valid until ``expires_at``."""
    return _sign(SCOPE_CUSTOMER, 0, customer_id, notification_id, secret, expires_at)


def read_token(token: str, *, secret: bytes, now: datetime | None = None) -> Claims:
    """Verify a token and return its claims; raise a ``LinkError`` saying why not.

    The signature is checked before anything in the payload is believed, so a forged
    token is never told whether it would have been expired."""
    if not token or len(token) > _MAX_TOKEN_CHARS:
        raise MalformedLink("token is empty or too long")
    try:
        raw = _b64decode(token)
    except (binascii.Error, ValueError):
        raise MalformedLink("token is not URL-safe base64") from None
    version = raw[0] if raw else None
    header = _LEGACY_HEADER if version == LEGACY_VERSION else _HEADER
    if version not in (VERSION, LEGACY_VERSION):
        raise MalformedLink(f"unknown token version {version}")
    if len(raw) < header.size + 1 + _TAG_BYTES:
        raise MalformedLink("token is too short")
    payload, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    if not hmac.compare_digest(tag, _tag(secret, payload)):
        raise TamperedLink("signature does not match")
    if version == LEGACY_VERSION:
        _, expires, case_id, notification_id = _LEGACY_HEADER.unpack_from(payload)
        scope = SCOPE_CASE
    else:
        _, scope, expires, case_id, notification_id = _HEADER.unpack_from(payload)
    try:
        customer_id = payload[header.size :].decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedLink("customer id is not UTF-8") from None
    expires_at = datetime.fromtimestamp(expires, UTC)
    if (now or datetime.now(UTC)) >= expires_at:
        raise ExpiredLink(f"link expired at {expires_at.isoformat()}")
    if scope == SCOPE_CASE:
        if case_id <= 0:
            raise MalformedLink("no case in a case link")
        return LinkClaims(case_id, customer_id, notification_id or None, expires_at)
    if scope == SCOPE_CUSTOMER:
        if case_id != 0:
            raise MalformedLink("a case in a customer link")
        return CustomerLinkClaims(customer_id, notification_id or None, expires_at)
    raise MalformedLink(f"unknown link scope {scope}")


def link_secret(settings: Settings) -> bytes:
    """The signing key: ``DUNNING_LINK_SECRET``, or in demo and development a random
    one kept in the data folder, so links survive restarts without a hard-coded key.

    Settings validation already refuses a live Stripe key without the setting."""
    if settings.link_secret is not None:
        return settings.link_secret.get_secret_value().encode("utf-8")
    if (settings.stripe_api_key or "").startswith("sk_live_"):
        raise RuntimeError("DUNNING_LINK_SECRET is required with a live Stripe key")
    return _stored_secret(Path(settings.data_dir).resolve() / SECRET_FILE)


@cache
def _stored_secret(path: Path) -> bytes:
    """Read the data folder's secret, creating it once; safe with several processes."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(base64.urlsafe_b64encode(os.urandom(32)))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)  # atomic, and never replaces a secret another process made
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_bytes().strip()


def _url(settings: Settings, token: str) -> str:
    return f"{settings.public_base}/pay/{token}"


def _expiry(settings: Settings) -> datetime:
    return datetime.now(UTC) + timedelta(days=settings.link_ttl_days)


def make_link(
    case_id: int,
    customer_id: str,
    notification_id: int | None,
    *,
    settings: Settings | None = None,
) -> str:
    """The customer's self-serve link for a case; dunning emails put this in their button."""
    settings = settings or get_settings()
    token = make_token(
        case_id,
        customer_id,
        notification_id,
        secret=link_secret(settings),
        expires_at=_expiry(settings),
    )
    return _url(settings, token)


def make_customer_link(
    customer_id: str,
    notification_id: int | None,
    *,
    settings: Settings | None = None,
) -> str:
    """The customer's self-serve link without a case: their next renewal and card on
    file. Renewal reminders and card-expiring notices put this in their button."""
    settings = settings or get_settings()
    token = make_customer_token(
        customer_id,
        notification_id,
        secret=link_secret(settings),
        expires_at=_expiry(settings),
    )
    return _url(settings, token)


def verify(token: str, settings: Settings | None = None) -> Claims:
    """Read a token from a request with the service's secret and clock."""
    return read_token(token, secret=link_secret(settings or get_settings()))
