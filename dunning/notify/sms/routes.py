"""``POST /webhooks/sms/twilio``: replies to our texts; STOP and START set the opt-out.

Twilio signs each request (``X-Twilio-Signature``, see ``signature``) with the auth
token over the URL it called: behind a proxy, ``DUNNING_PUBLIC_URL`` must be the
address configured at Twilio, else the request's own URL is used. A request that
does not verify gets 403 and changes nothing. The answer is an empty TwiML document:
Twilio itself confirms the opt-out to the customer.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from dunning.db import session_scope
from dunning.notify.sms.optouts import keyword, normalize_phone, record_reply
from dunning.notify.sms.signature import is_valid
from dunning.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(tags=["sms"])

SMS_WEBHOOK_PATH = "/webhooks/sms/twilio"
_MAX_BODY_BYTES = 64 * 1024
_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _signed_url(request: Request, settings: Settings) -> str:
    """The URL Twilio signed: the public one when configured, else the one we received."""
    if not settings.public_url:
        return str(request.url)
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{settings.public_base}{request.url.path}{query}"


@router.post(SMS_WEBHOOK_PATH, include_in_schema=False)
async def twilio_reply(request: Request) -> Response:
    """An inbound SMS: verify, then record STOP / START for the sending number."""
    settings: Settings = request.app.state.settings
    body = await request.body()
    if len(body) > _MAX_BODY_BYTES:
        return Response("too large", status_code=413)
    params = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    token = settings.sms_auth_token.get_secret_value() if settings.sms_auth_token else ""
    signature = request.headers.get("x-twilio-signature")
    if not token or not is_valid(token, _signed_url(request, settings), params, signature):
        log.warning("refused an SMS reply with a missing or wrong X-Twilio-Signature")
        return Response("invalid signature", status_code=403)
    fields = dict(params)
    choice = keyword(fields.get("Body", ""))
    phone = normalize_phone(fields.get("From"))
    if choice is not None and phone is not None:
        await run_in_threadpool(_record, phone, choice, fields.get("MessageSid"))
    return Response(_TWIML, media_type="text/xml")


def _record(phone: str, opted_out: bool, message_id: str | None) -> None:
    with session_scope() as session:
        record_reply(session, phone, opted_out, message_id, datetime.now(UTC))
    log.info("SMS %s for %s", "opt-out" if opted_out else "opt-in", phone)
