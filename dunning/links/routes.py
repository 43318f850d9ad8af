"""``/pay/<token>``: the customer's card-update page, without login.

``GET /pay/<token>`` shows the page (or, with ``DUNNING_UPDATE_MODE=portal``, sends the
customer to a Stripe Billing Portal session); ``POST /pay/<token>/card`` takes the
SetupIntent that Stripe.js confirmed and answers with a redirect back to the page
(post/redirect/get, so a reload never re-posts); ``POST /pay/<token>/confirm`` takes
the payment intent that Stripe.js confirmed on-session when the renewal waited for the
customer to authenticate (3-D Secure); ``GET /pay/<token>/done`` is where the portal
returns. Every request is rate-limited per client IP and per token.

A case link opens its case (pay now). A customer link opens the customer's open case
the same way if there is one, else their next renewal (save a card, no charge); see
``dunning.links.customer``.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from urllib.parse import parse_qs

import stripe
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from dunning.links import customer, pages, ratelimit, service, thanks, tokens
from dunning.links.customer import RenewalTarget
from dunning.links.service import LinkRefused
from dunning.processors.stripe_adapter import (
    ProcessorNotConfigured,
    StripeAdapter,
    TransientProcessorError,
)
from dunning.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(tags=["links"])

# Card saves charge the customer: at most this many per token per hour, on top of
# the general limit, so a leaked link cannot be used to test stolen cards at length.
CARD_SAVES_PER_HOUR = 10
_MAX_FORM_BYTES = 4096
_UNAVAILABLE = (ProcessorNotConfigured, TransientProcessorError, stripe.StripeError)
_STATUS = {"invalid": 404, "expired": 410, "closed": 410, "paid": 200, "limited": 429}


def _html(rendered: pages.Rendered, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        rendered.html,
        status_code=status,
        headers={
            "Content-Security-Policy": rendered.csp,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "X-Robots-Tag": "noindex, nofollow",
        },
    )


def _message(
    kind: str, request: Request, status: int | None = None, retry: str | None = None
) -> HTMLResponse:
    locale = pages.locale_from_header(request.headers.get("accept-language"))
    rendered = pages.render_message(kind, locale, _settings(request).branding(), retry)
    response = _html(rendered, status or _STATUS.get(kind, 200))
    if kind == "limited":
        response.headers["Retry-After"] = str(_settings(request).link_rate_window_seconds)
    return response


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _allowed(request: Request, token: str, bucket: str) -> bool:
    """One hit per client IP and per token in the current window."""
    settings = _settings(request)
    if not settings.redis_url:
        return True
    client = request.client.host if request.client else "unknown"
    digest = ratelimit.token_key(token)
    keys = [f"links:{bucket}:ip:{client}", f"links:{bucket}:token:{digest}"]
    if not ratelimit.allow(
        settings.redis_url, keys, settings.link_rate_limit, settings.link_rate_window_seconds
    ):
        return False
    if bucket == "save":
        return ratelimit.allow(
            settings.redis_url, [f"links:save-hour:token:{digest}"], CARD_SAVES_PER_HOUR, 3600
        )
    return True


def _claims(token: str, request: Request) -> tokens.Claims | HTMLResponse:
    try:
        return tokens.verify(token, _settings(request))
    except tokens.ExpiredLink:
        return _message("expired", request)
    except tokens.LinkError as exc:
        log.info("refused a %s link", exc.reason)
        return _message("invalid", request)


def _resolve(claims: tokens.Claims) -> tokens.LinkClaims | RenewalTarget:
    """What the claims open now: a case (the link's own, or a customer link's open
    case) or a renewal; ``LinkRefused`` when nothing."""
    if isinstance(claims, tokens.CustomerLinkClaims):
        return customer.resolve(claims)
    return claims


def _who(target: tokens.Claims | RenewalTarget) -> str:
    if isinstance(target, tokens.LinkClaims):
        return f"case {target.case_id}"
    if isinstance(target, RenewalTarget):
        return f"subscription {target.subscription_id}"
    return f"customer link {target.customer_id}"


@router.get("/pay/{token}", response_class=HTMLResponse)
def pay_page(token: str, request: Request, result: str | None = None) -> Response:
    """The update page for an open case or a renewal, or a clear page saying why there
    is none."""
    if not _allowed(request, token, "view"):
        return _message("limited", request)
    claims = _claims(token, request)
    if isinstance(claims, HTMLResponse):
        return claims
    if result == service.Outcome.PAID:
        paid = _thanks(claims, request)
        if paid is not None:
            return paid
        if isinstance(claims, tokens.CustomerLinkClaims):
            return _message("paid", request)  # its customer's case, paid earlier
    settings = _settings(request)
    target: tokens.LinkClaims | RenewalTarget | None = None
    try:
        target = _resolve(claims)
        adapter = StripeAdapter.from_settings(settings)
        if settings.update_mode == "portal":
            done = f"{settings.public_base}/pay/{token}/done"
            if isinstance(target, RenewalTarget):
                url = customer.start_portal(target, adapter, done)
            else:
                url = service.start_portal(target, adapter, done)
            return RedirectResponse(url, status_code=303)
        key = pages.publishable_key(settings)
        if key is None:
            raise ProcessorNotConfigured("DUNNING_STRIPE_PUBLISHABLE_KEY is not set")
        form = pages.CardForm("", key, pages.stripe_js_url(settings), f"/pay/{token}/card")
        accept = request.headers.get("accept-language")
        if isinstance(target, RenewalTarget):
            renewal = customer.view_renewal(target, adapter)
            form = replace(form, client_secret=customer.start_update(target, adapter))
            rendered = pages.render_renewal(
                renewal,
                locale=pages.page_locale(renewal, accept),
                brand=settings.branding(),
                form=form,
                result=result if result in pages.RENEWAL_NOTICES else None,
            )
        else:
            view = service.view_case(target, adapter)
            form = replace(form, client_secret=service.start_update(target, adapter))
            confirm = service.start_confirm(target, adapter) if view.awaiting_action else None
            rendered = pages.render_pay(
                view,
                locale=pages.page_locale(view, accept),
                brand=settings.branding(),
                form=form,
                result=result if result in pages.NOTICES else None,
                confirm=pages.ConfirmForm(confirm, f"/pay/{token}/confirm") if confirm else None,
            )
    except LinkRefused as refused:
        return _message(refused.reason, request)
    except _UNAVAILABLE:
        log.exception("pay page unavailable for %s", _who(target or claims))
        return _message("unavailable", request, 503, retry=f"/pay/{token}")
    return _html(rendered)


@router.post("/pay/{token}/card")
async def save_card(token: str, request: Request) -> Response:
    """Stripe.js confirmed a SetupIntent: make its card the default, and pay now if a
    case is open."""
    body = await _small_form(request)
    if body is None:
        return _message("invalid", request, 413)
    return await run_in_threadpool(_save_card, token, request, body)


async def _small_form(request: Request) -> bytes | None:
    """The posted form, or None once it is past the cap (reading stops there)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            return None
    return body


def _form_claims(
    token: str, request: Request, body: bytes, field: str
) -> tuple[str, tokens.Claims] | Response:
    """The one form field a page posts and the link's claims, or the page that refuses."""
    if not _allowed(request, token, "save"):
        return _message("limited", request)
    value = (parse_qs(body.decode("utf-8", "replace")).get(field) or [""])[0].strip()
    claims = _claims(token, request)
    if isinstance(claims, HTMLResponse):
        return claims
    return value, claims


def _save_card(token: str, request: Request, body: bytes) -> Response:
    given = _form_claims(token, request, body, "setup_intent")
    if isinstance(given, Response):
        return given
    setup_intent, claims = given
    target: tokens.LinkClaims | RenewalTarget | None = None
    try:
        target = _resolve(claims)
        adapter = StripeAdapter.from_settings(_settings(request))
        if isinstance(target, RenewalTarget):
            outcome = customer.save_card(target, adapter, setup_intent)
        else:
            outcome = service.save_card(target, adapter, setup_intent)
    except LinkRefused as refused:
        return _message(refused.reason, request)
    except _UNAVAILABLE:
        log.exception("card save failed for %s", _who(target or claims))
        outcome = service.Outcome.NOT_SAVED
    # Paid: the thank-you, with the card charged and the next renewal (pay_page).
    return RedirectResponse(f"/pay/{token}?result={outcome}", status_code=303)


@router.post("/pay/{token}/confirm")
async def confirm_payment(token: str, request: Request) -> Response:
    """Stripe.js confirmed the invoice's payment intent (3-D Secure done): record the
    payment, then show the thank-you (or why not)."""
    body = await _small_form(request)
    if body is None:
        return _message("invalid", request, 413)
    return await run_in_threadpool(_confirm_payment, token, request, body)


def _confirm_payment(token: str, request: Request, body: bytes) -> Response:
    given = _form_claims(token, request, body, "payment_intent")
    if isinstance(given, Response):
        return given
    intent, claims = given
    target: tokens.LinkClaims | RenewalTarget | None = None
    try:
        target = _resolve(claims)
        if isinstance(target, RenewalTarget):  # no invoice is due: nothing to confirm
            return RedirectResponse(f"/pay/{token}", status_code=303)
        adapter = StripeAdapter.from_settings(_settings(request))
        outcome = service.confirm_payment(target, adapter, intent)
    except LinkRefused as refused:
        return _message(refused.reason, request)
    except _UNAVAILABLE:
        log.exception("payment confirmation failed for %s", _who(target or claims))
        outcome = service.Outcome.PROCESSING
    return RedirectResponse(f"/pay/{token}?result={outcome}", status_code=303)


@router.get("/pay/{token}/done", response_class=HTMLResponse)
def portal_done(token: str, request: Request) -> Response:
    """Back from the Billing Portal: pay with the new card (or, for a renewal, keep it),
    then say how it went."""
    if not _allowed(request, token, "save"):
        return _message("limited", request)
    claims = _claims(token, request)
    if isinstance(claims, HTMLResponse):
        return claims
    target: tokens.LinkClaims | RenewalTarget | None = None
    try:
        target = _resolve(claims)
        adapter = StripeAdapter.from_settings(_settings(request))
        if isinstance(target, RenewalTarget):
            outcome = customer.portal_return(target, adapter)
        else:
            outcome = service.portal_return(target, adapter)
    except LinkRefused as refused:
        return _message(refused.reason, request)
    except _UNAVAILABLE:
        log.exception("portal return failed for %s", _who(target or claims))
        return _message("unavailable", request, 503, retry=f"/pay/{token}/done")
    if outcome == service.Outcome.PAID:
        paid = _thanks(claims, request)
        if paid is not None:
            return paid
    locale = pages.locale_from_header(request.headers.get("accept-language"))
    brand = _settings(request).branding()
    return _html(pages.render_outcome(outcome, locale, brand, f"/pay/{token}"))


def _thanks(claims: tokens.Claims, request: Request) -> HTMLResponse | None:
    """The thank-you for a payment this link made just now, or None when there is none."""
    paid = thanks.thank_you(claims)
    if paid is None:
        return None
    locale = pages.page_locale(paid, request.headers.get("accept-language"))
    return _html(pages.render_thanks(paid, locale, _settings(request).branding()))
