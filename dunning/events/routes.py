"""``POST /webhooks/stripe``: verify, store raw, answer; everything else happens later.

This endpoint is served as a bare ASGI handler rather than a FastAPI route: it is the
one hot path of the service, and the framework's routing and middleware cost more CPU
per request than the verification and the insert together (see bench/ingest.py).
"""

from __future__ import annotations

import json
from typing import Any

from dunning.events.intake import DatabaseUnavailable, GroupCommitter, UnstorableEvent
from dunning.events.signature import SignatureError, verify
from dunning.events.store import MalformedEvent, parse_event
from dunning.settings import Settings

WEBHOOK_PATH = "/webhooks/stripe"
_KEPT_HEADERS = (b"stripe-signature", b"content-type", b"user-agent", b"content-length")

Scope = dict[str, Any]


class _Rejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


async def _respond(send: Any, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Any, declared: bytes | None, limit: int) -> bytes:
    if declared and declared.isdigit() and int(declared) > limit:
        raise _Rejected(413, f"body larger than {limit} bytes")
    body = bytearray()
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Rejected(400, "client disconnected")
        body += message.get("body", b"")
        if len(body) > limit:
            raise _Rejected(413, f"body larger than {limit} bytes")
        more = message.get("more_body", False)
    return bytes(body)


async def stripe_webhook(
    scope: Scope, receive: Any, send: Any, *, settings: Settings, committer: GroupCommitter
) -> None:
    """Receive one Stripe event. 2xx means it is stored durably (or was already)."""
    headers = dict(scope["headers"])
    try:
        raw = await _read_body(receive, headers.get(b"content-length"), settings.max_webhook_bytes)
        signature = headers.get(b"stripe-signature")
        try:
            verify(
                raw,
                signature.decode("latin-1") if signature else None,
                settings.stripe_webhook_secrets,
                tolerance=settings.webhook_tolerance_seconds,
            )
        except SignatureError as exc:
            raise _Rejected(400, f"signature verification failed: {exc}") from None
        kept = {k.decode(): headers[k].decode("latin-1") for k in _KEPT_HEADERS if k in headers}
        try:
            event = parse_event(raw, kept)
        except MalformedEvent as exc:
            raise _Rejected(400, str(exc)) from None
        try:
            new = await committer.submit(event)
        except UnstorableEvent as exc:
            raise _Rejected(400, f"event cannot be stored: {exc}") from None
        except DatabaseUnavailable:
            raise _Rejected(503, "event store unavailable; retry later") from None
    except _Rejected as rejected:
        await _respond(send, rejected.status, {"error": rejected.message})
        return
    await _respond(send, 200, {"received": True, "duplicate": not new})
