"""Signed, expiring self-serve links: ``{DUNNING_PUBLIC_URL}/pay/<token>``.

The link is the customer's only credential (no login), so it must be unforgeable,
short-lived and narrow (ARCHITECTURE rule 9). A token is one URL-safe base64 string
(no padding) of ``payload || tag``:

    payload = version (1 byte, 1) | expires_at (uint32, Unix seconds)
              | case id (uint64) | notification id (uint64, 0 = none)
              | customer id (UTF-8, the rest)
    tag     = HMAC-SHA256(secret, "dunning-link\\0" || payload), first 16 bytes

About 74 characters for a Stripe customer id. Nothing in it is secret (ids and a
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

VERSION = 1
_HEADER = struct.Struct(">BIQQ")
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
    """What a verified token grants: one case of one customer, until ``expires_at``."""

    case_id: int
    customer_id: str
    notification_id: int | None
    expires_at: datetime


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64encode(raw) != text:  # unused trailing bits: one token, one spelling
        raise ValueError("non-canonical base64")
    return raw


def _tag(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, _CONTEXT + payload, hashlib.sha256).digest()[:_TAG_BYTES]


def make_token(
    case_id: int,
    customer_id: str,
    notification_id: int | None,
    *,
    secret: bytes,
    expires_at: datetime,
) -> str:
    """Sign a token for one case of one customer, valid until ``expires_at``."""
    customer = customer_id.encode("utf-8")
    if not customer or len(customer) > _MAX_CUSTOMER_ID_BYTES:
        raise ValueError("customer id must be 1 to 255 bytes")
    if case_id <= 0 or (notification_id is not None and notification_id <= 0):
        raise ValueError("case and notification ids are positive integers")
    payload = (
        _HEADER.pack(VERSION, int(expires_at.timestamp()), case_id, notification_id or 0) + customer
    )
    return _b64encode(payload + _tag(secret, payload))


def read_token(token: str, *, secret: bytes, now: datetime | None = None) -> LinkClaims:
    """Verify a token and return its claims; raise a ``LinkError`` saying why not.

    The signature is checked before anything in the payload is believed, so a forged
    token is never told whether it would have been expired."""
    if not token or len(token) > _MAX_TOKEN_CHARS:
        raise MalformedLink("token is empty or too long")
    try:
        raw = _b64decode(token)
    except (binascii.Error, ValueError):
        raise MalformedLink("token is not URL-safe base64") from None
    if len(raw) < _HEADER.size + 1 + _TAG_BYTES:
        raise MalformedLink("token is too short")
    payload, tag = raw[:-_TAG_BYTES], raw[-_TAG_BYTES:]
    if payload[0] != VERSION:
        raise MalformedLink(f"unknown token version {payload[0]}")
    if not hmac.compare_digest(tag, _tag(secret, payload)):
        raise TamperedLink("signature does not match")
    _, expires, case_id, notification_id = _HEADER.unpack_from(payload)
    try:
        customer_id = payload[_HEADER.size :].decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedLink("customer id is not UTF-8") from None
    expires_at = datetime.fromtimestamp(expires, UTC)
    if (now or datetime.now(UTC)) >= expires_at:
        raise ExpiredLink(f"link expired at {expires_at.isoformat()}")
    if case_id <= 0:
        raise MalformedLink("no case in token")
    return LinkClaims(case_id, customer_id, notification_id or None, expires_at)


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


def make_link(case_id: int, customer_id: str, notification_id: int | None) -> str:
    """The customer's self-serve link for a case; emails put this in their button."""
    settings = get_settings()
    token = make_token(
        case_id,
        customer_id,
        notification_id,
        secret=link_secret(settings),
        expires_at=datetime.now(UTC) + timedelta(days=settings.link_ttl_days),
    )
    return f"{settings.public_base}/pay/{token}"


def verify(token: str, settings: Settings | None = None) -> LinkClaims:
    """Read a token from a request with the service's secret and clock."""
    return read_token(token, secret=link_secret(settings or get_settings()))
