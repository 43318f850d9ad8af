"""Stripe's webhook signature scheme: ``t=<ts>,v1=<hex hmac-sha256 of "<ts>.<body>">``."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence


class SignatureError(ValueError):
    """The request is not provably from the processor."""


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header value for ``body`` (used by tests, the bench, the demo)."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(
    body: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    tolerance: int = 300,
    now: float | None = None,
) -> None:
    """Raise ``SignatureError`` unless one ``v1`` signature matches one of ``secrets``.

    Several secrets are accepted so a signing secret can be rotated without downtime.
    """
    if not secrets:
        raise SignatureError("no webhook signing secret is configured")
    if not header:
        raise SignatureError("missing Stripe-Signature header")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("malformed timestamp") from None
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        raise SignatureError("no timestamp or v1 signature in header")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("timestamp outside the tolerance window")
    signed = f"{timestamp}.".encode() + body
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, sig) for sig in signatures):
            return
    raise SignatureError("no signature matches")
