"""``POST /webhooks/stripe``: verify, store raw, answer; everything else happens later."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse

from dunning.events.intake import DatabaseUnavailable, GroupCommitter
from dunning.events.signature import SignatureError, verify
from dunning.events.store import MalformedEvent, parse_event
from dunning.settings import Settings

_KEPT_HEADERS = ("stripe-signature", "content-type", "user-agent", "content-length")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def stripe_webhook(request: Request) -> JSONResponse:
    """Receive one Stripe event. 2xx means it is stored durably (or was already)."""
    settings: Settings = request.app.state.settings
    committer: GroupCommitter = request.app.state.committer
    limit = settings.max_webhook_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return _error(413, f"body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return _error(413, f"body larger than {limit} bytes")
    raw = bytes(body)
    try:
        verify(
            raw,
            request.headers.get("stripe-signature"),
            settings.stripe_webhook_secrets,
            tolerance=settings.webhook_tolerance_seconds,
        )
    except SignatureError as exc:
        return _error(400, f"signature verification failed: {exc}")
    headers = {k: request.headers[k] for k in _KEPT_HEADERS if k in request.headers}
    try:
        event = parse_event(raw, headers)
    except MalformedEvent as exc:
        return _error(400, str(exc))
    try:
        new = await committer.submit(event)
    except DatabaseUnavailable:
        return _error(503, "event store unavailable; retry later")
    return JSONResponse({"received": True, "duplicate": not new})
