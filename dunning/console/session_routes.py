"""Log in with an API key once, then a session cookie; log out. Shared by the dashboard.

The login form carries a CSRF token from an anonymous session (a site cannot log a
browser into its own key); logging in starts a new session with a new token. Failed
logins are counted per address (``throttle``): after five in a minute, a 429.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from dunning.admin.actors import Actor
from dunning.admin.auth import READ_ROLES, KeyRefused, check_key
from dunning.admin.sessions import (
    COOKIE,
    SessionData,
    SessionRefused,
    cookie_options,
    csrf_matches,
    dump_session,
    new_session,
)
from dunning.console import throttle
from dunning.console.access import (
    HOME,
    LOGIN_PATH,
    ConsoleRoute,
    Viewer,
    form_fields,
    poster,
    safe_next,
    secure_cookie,
    session_of,
    settings_of,
    viewer_of,
)
from dunning.console.pages import page

router = APIRouter(route_class=ConsoleRoute, include_in_schema=False)

WHY = {
    "expired": "Your session expired: log in again.",
    "invalid": "Your session could not be read: log in again.",
    "revoked": "The key of your session was revoked: log in with another key.",
    "logged_out": "You are logged out.",
}


def _with_cookie(response: Response, request: Request, data: SessionData) -> Response:
    value = dump_session(data, settings_of(request))
    response.set_cookie(COOKIE, value, **cookie_options(secure_cookie(request)))
    return response


def _anonymous(request: Request) -> SessionData:
    """The browser's anonymous session if it has one (two tabs keep working), else new."""
    try:
        data = session_of(request)
    except SessionRefused:
        return new_session()
    return data if data.key_id is None else new_session()


def _form(
    request: Request, next_url: str, *, error: str | None, notice: str | None, status: int
) -> Response:
    """The login form, its CSRF token that of an anonymous session."""
    data = _anonymous(request) if status != 403 else new_session()
    response = page(
        "login.html",
        status,
        viewer=None,
        csrf=data.csrf,
        next=safe_next(next_url),
        error=error,
        notice=notice,
        action=LOGIN_PATH,
    )
    return _with_cookie(response, request, data)


def login_page(
    request: Request,
    next_url: str | None,
    why: str | None = None,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    """The login form; a browser already logged in goes straight on."""
    try:
        viewer_of(request)
    except SessionRefused:
        notice = WHY.get(why or "")
        return _form(request, next_url or HOME, error=error, notice=notice, status=status)
    return RedirectResponse(safe_next(next_url), 303)


async def log_in(request: Request, fallback: str = HOME) -> Response:
    """Check the form's CSRF token and key; on success, a new session and a redirect
    to the form's ``next`` (``fallback`` when it is not a console or dashboard path)."""
    fields = await form_fields(request)
    target = safe_next(fields.get("next"), fallback)
    settings = settings_of(request)
    address = request.client.host if request.client else "unknown"
    redis_url = settings.redis_url or ""
    wait = await run_in_threadpool(throttle.wait_seconds, redis_url, address)
    if wait:
        message = f"Too many failed logins from your address. Try again in {wait} seconds."
        response = _form(request, target, error=message, notice=None, status=429)
        response.headers["Retry-After"] = str(wait)
        return response
    try:
        anonymous = session_of(request)
    except SessionRefused:
        anonymous = None
    if anonymous is None or not csrf_matches(anonymous, fields.get("csrf")):
        message = "The login form expired or did not come from this site: try again."
        return _form(request, target, error=message, notice=None, status=403)
    try:
        actor: Actor = await run_in_threadpool(check_key, fields.get("key", "").strip(), READ_ROLES)
    except KeyRefused:
        await run_in_threadpool(throttle.record_failure, redis_url, address)
        message = "That key is unknown, revoked, or has neither the ops nor the finance role."
        return _form(request, target, error=message, notice=None, status=401)
    return _with_cookie(RedirectResponse(target, 303), request, new_session(actor.key_id))


def log_out(request: Request) -> Response:
    """End the session in this browser (the cookie is dropped)."""
    response = RedirectResponse(f"{LOGIN_PATH}?why=logged_out", 303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax")
    return response


@router.get(LOGIN_PATH)
def login_form(request: Request, next: str | None = None, why: str | None = None) -> Response:
    """The login form: an API key with the ops or finance role."""
    return login_page(request, next, why)


@router.post(LOGIN_PATH)
async def login(request: Request) -> Response:
    return await log_in(request)


@router.post("/console/logout")
def logout(request: Request, viewer: Annotated[Viewer, Depends(poster)]) -> Response:
    return log_out(request)
