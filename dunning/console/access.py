"""Who is looking at the console and what they may do: session, CSRF token and role.

Every page asks for a ``Viewer``: a live session, else a redirect to the login page
(an expired or tampered cookie included). Every form that changes something asks for
an ``Operator``: the same, plus the form's CSRF token and the ``ops`` role, else 403.
The role rule is ``admin.auth``'s (``CHANGE_ROLES``), the one the JSON API applies.
The dashboard uses ``viewer_of`` too, so one login serves both.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import Depends, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from dunning.admin.actors import Actor
from dunning.admin.auth import CHANGE_ROLES, READ_ROLES
from dunning.admin.sessions import (
    COOKIE,
    SessionData,
    SessionRefused,
    csrf_matches,
    load_session,
    session_actor,
)
from dunning.console.pages import page
from dunning.db import session_scope
from dunning.settings import Settings

LOGIN_PATH = "/console/login"
HOME = "/console"
_NEXT_PREFIXES = ("/console", "/dashboard")
MAX_FORM_BYTES = 512 * 1024  # a policy's TOML is at most 256 KiB


class LoginNeeded(Exception):
    """No live session: send the browser to the login page, then back to ``next``."""

    def __init__(self, next_url: str, why: str) -> None:
        super().__init__(why)
        self.next_url = next_url
        self.why = why


class Refused(Exception):
    """A request the console answers with an error page (``status``: 403, 404, 413…)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Viewer:
    """A logged-in person: the key's actor and the CSRF token their forms carry."""

    actor: Actor
    csrf: str

    @property
    def can_act(self) -> bool:
        """Ops may change things; finance reads (the rule of ``admin.auth``)."""
        return self.actor.role in CHANGE_ROLES


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def secure_cookie(request: Request) -> bool:
    """Secure when the browser talks HTTPS: directly, or behind a proxy at a https URL."""
    public = settings_of(request).public_url or ""
    return request.url.scheme == "https" or public.startswith("https://")


def safe_next(target: str | None, fallback: str = HOME) -> str:
    """Only a path of the console or the dashboard: never an open redirect."""
    if (
        target
        and target.startswith(_NEXT_PREFIXES)
        and not any(bad in target for bad in ("//", "\\", "\n", "\r"))
    ):
        return target
    return fallback


def login_url(next_url: str, why: str | None = None) -> str:
    query = {"next": safe_next(next_url)}
    if why and why != "missing":  # a first visit needs no explanation
        query["why"] = why
    return f"{LOGIN_PATH}?{urlencode(query)}"


def here(request: Request) -> str:
    """The path and query of the request, to come back to after logging in."""
    query = f"?{request.url.query}" if request.url.query else ""
    return safe_next(request.url.path + query)


def session_of(request: Request) -> SessionData:
    """The session in the request's cookie (``SessionRefused`` when none is valid)."""
    return load_session(request.cookies.get(COOKIE), settings_of(request))


def viewer_of(request: Request) -> Viewer:
    """The logged-in viewer, reading the key row (blocking: call from a thread)."""
    data = session_of(request)
    with session_scope() as session:
        actor = session_actor(session, data)
    if actor.role not in READ_ROLES:
        raise SessionRefused("revoked")
    return Viewer(actor=actor, csrf=data.csrf)


def reader(request: Request) -> Viewer:
    """Dependency of every page: the viewer, or a redirect to the login page."""
    try:
        return viewer_of(request)
    except SessionRefused as exc:
        raise LoginNeeded(here(request), exc.reason) from None


async def form_fields(request: Request) -> dict[str, str]:
    """The urlencoded form of a POST, first value of each field (read once, kept)."""
    cached = getattr(request.state, "form_fields", None)
    if isinstance(cached, dict):
        return cached
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Refused(413, "That form is too large.")
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    fields = {name: values[0] for name, values in parsed.items()}
    request.state.form_fields = fields
    return fields


async def poster(request: Request) -> Viewer:
    """Dependency of a form any reader may send (logout, previews): session and CSRF."""
    try:
        viewer = await run_in_threadpool(viewer_of, request)
    except SessionRefused as exc:
        raise LoginNeeded(HOME, exc.reason) from None
    fields = await form_fields(request)
    if not csrf_matches(SessionData(viewer.csrf), fields.get("csrf")):
        raise Refused(
            403,
            "This form is out of date or did not come from the console (no valid CSRF "
            "token). Go back, reload the page and try again.",
        )
    return viewer


async def operator(request: Request) -> Viewer:
    """Dependency of a form that changes something: session, CSRF token and ``ops``."""
    viewer = await poster(request)
    if not viewer.can_act:
        raise Refused(
            403,
            f"Your key {viewer.actor.name!r} has the {viewer.actor.role.value!r} role: it "
            "can read the console but not change anything (that needs an ops key).",
        )
    return viewer


Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class ConsoleRoute(APIRoute):
    """A route whose refusals are pages: a redirect to log in, or an error page."""

    def get_route_handler(self) -> Endpoint:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except LoginNeeded as exc:
                return RedirectResponse(login_url(exc.next_url, exc.why), 303)
            except Refused as exc:
                return page("refused.html", exc.status, message=exc.message, viewer=None)

        return guarded


# The two dependencies every console route takes, by name.
Reader = Annotated[Viewer, Depends(reader)]
Operator = Annotated[Viewer, Depends(operator)]
