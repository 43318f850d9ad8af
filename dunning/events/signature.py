"""Stripe's webhook signature scheme, checked by Stripe's own SDK.

``stripe.WebhookSignature.verify_header`` parses ``t=<ts>,v1=<hex hmac>`` and compares in
constant time; we call it once per configured secret so a signing secret can be rotated
without downtime, and only add what the SDK leaves to the caller: refusing headers it
would crash on, and a timestamp too far in the future.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

import stripe


class SignatureError(ValueError):
    """The request is not provably from the processor."""


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """A ``Stripe-Signature`` header value for ``body`` (used by tests, the bench, the demo)."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _first_timestamp(header: str) -> int:
    """The ``t`` the SDK has just accepted (it reads the first ``t=`` item too)."""
    for item in header.split(","):
        parts = item.split("=", 2)
        if parts[0] == "t":
            return int(parts[1])
    raise SignatureError("no timestamp in header")  # unreachable once the SDK accepted it


def verify(
    body: bytes, header: str | None, secrets: Sequence[str], *, tolerance: int = 300
) -> None:
    """Raise ``SignatureError`` unless one ``v1`` signature matches one of ``secrets`` and
    the timestamp is within ``tolerance`` seconds of now, in either direction."""
    if not secrets:
        raise SignatureError("no webhook signing secret is configured")
    if not header:
        raise SignatureError("missing Stripe-Signature header")
    if not header.isascii():
        # The SDK compares str digests, which raises TypeError on non-ASCII input.
        raise SignatureError("Stripe-Signature header is not ASCII")
    try:
        payload = body.decode("utf-8")  # the SDK signs the decoded text
    except UnicodeDecodeError:
        raise SignatureError("body is not UTF-8") from None
    failures: list[str] = []
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
        except stripe.SignatureVerificationError as exc:
            failures.append(str(exc))
            continue
        if _first_timestamp(header) > time.time() + tolerance:
            raise SignatureError("timestamp outside the tolerance window (in the future)")
        return
    # The tolerance message says more than "no match" when one secret did match.
    raise SignatureError(next((f for f in failures if "tolerance" in f), failures[0]))
