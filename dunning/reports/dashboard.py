"""``/dashboard``: the finance dashboard, rendered on the server with inline SVG charts.

Access: an API key with role ``finance`` or ``ops``, sent as ``X-API-Key`` /
``Authorization: Bearer``, or entered once in the login form shared with the console,
which starts a signed session cookie (``admin.sessions``; the key is never stored in the
browser). Every number on the page comes from the same metric functions as ``/api/reports``.

Without dates the page shows the last 30 days up to now (a new install has data at
once); dates it cannot use (reversed, malformed) are named on the page, which then shows
that default instead of answering with an error a browser would print as raw JSON.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from dunning.admin.actors import Actor
from dunning.admin.auth import READ_ROLES, KeyRefused, check_key, header_key
from dunning.admin.sessions import SessionRefused
from dunning.console import session_routes
from dunning.console.access import ConsoleRoute, Viewer, poster, viewer_of
from dunning.http import FIRST_DAY, LAST_DAY, Day, DbText
from dunning.reports.dashboard_page import Period, build_page
from dunning.reports.display import email_step_name, exact, fmt_duration, fmt_money, fmt_rate
from dunning.reports.routes import csv_response, report_filters
from dunning.reports.schemas import Filters
from dunning.reports.snapshot import reading
from dunning.reports.tables import TABLES, filters

router = APIRouter(prefix="/dashboard", include_in_schema=False, route_class=ConsoleRoute)

COOKIE_PATH = "/dashboard"
DEFAULT_DAYS = 30

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_templates.filters.update(
    rate=fmt_rate, money=fmt_money, duration=fmt_duration, exact=exact, step_name=email_step_name
)


# --- the period ----------------------------------------------------------------------------


def last_days(today: date, days: int = DEFAULT_DAYS) -> tuple[date, date]:
    """``[today - days + 1, tomorrow)``: the last ``days`` days up to now, today included."""
    end = today + timedelta(days=1)
    return end - timedelta(days=days), end


def _day(value: str | None, label: str) -> date | None:
    """A date from the form, or None when empty; ValueError saying what is wrong."""
    if not value or not value.strip():
        return None
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"'{label}' must be a date like 2026-10-01, not {value!r}") from None
    if not FIRST_DAY <= day < LAST_DAY:
        raise ValueError(f"'{label}' must be between {FIRST_DAY} and {LAST_DAY}, not {day}")
    return day


def period(
    start: str | None, end: str | None, currency: str | None, segment: str | None, today: date
) -> Period:
    """The period asked for; the last 30 days up to now when none (or an unusable one) is."""
    default_start, default_end = last_days(today)
    try:
        first, after = _day(start, "From"), _day(end, "To")
        if first is None and after is None:
            return Period(filters(default_start, default_end, currency, segment), True)
        if after is None:
            after = max(default_end, (first or default_end) + timedelta(days=1))
        if first is None:
            first = after - timedelta(days=DEFAULT_DAYS)
        if after <= first:
            raise ValueError(f"'To' ({after}) must be after 'From' ({first})")
        return Period(filters(first, after, currency, segment), False)
    except ValueError as exc:
        problem = f"{exc}. Showing the last {DEFAULT_DAYS} days instead."
    try:
        f: Filters = filters(default_start, default_end, currency, segment)
    except ValueError:  # the currency was the problem
        f = filters(default_start, default_end, None, segment)
    return Period(f, True, problem)


# --- access --------------------------------------------------------------------------------


def _key_of(request: Request) -> str | None:
    """A key sent in a header, as the API reads it (a browser has a session instead)."""
    return header_key(request.headers)


def _viewer(request: Request) -> Viewer | None:
    """Who reads: the key in a header, else the browser's session (the console's)."""
    key = _key_of(request)
    if key:
        actor = _reader(key)
        return None if actor is None else Viewer(actor=actor, csrf="")
    try:
        return viewer_of(request)
    except SessionRefused:
        return None


def _reader(key: str | None) -> Actor | None:
    """The actor of a key that may read reports, or None: the rule is the API's."""
    try:
        return check_key(key, READ_ROLES)
    except KeyRefused:
        return None


def _login_page(request: Request, error: str | None, status: int) -> Response:
    target = _safe_next(str(request.url.path) + _query(request))
    return session_routes.login_page(request, target, error=error, status=status)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str | None = None) -> Response:
    """The login form (the console's): an API key with the finance or ops role."""
    return session_routes.login_page(request, _safe_next(next))


def _query(request: Request) -> str:
    return f"?{request.url.query}" if request.url.query else ""


def _safe_next(target: str | None) -> str:
    """Only a path under /dashboard: never an open redirect."""
    if target and target.startswith(COOKIE_PATH) and not target.startswith("//"):
        return target
    return COOKIE_PATH


def _no_store() -> dict[str, str]:
    return {"Cache-Control": "no-store", "X-Frame-Options": "DENY"}


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the key from the form (the console's login: CSRF token, throttle, session)."""
    return await session_routes.log_in(request, fallback=COOKIE_PATH)


@router.post("/logout")
def logout(request: Request, viewer: Annotated[Viewer, Depends(poster)]) -> Response:
    """End the browser's session (the form carries the session's CSRF token)."""
    return session_routes.log_out(request)


@router.get("", response_class=HTMLResponse)
def dashboard(
    request: Request,
    start: Annotated[DbText | None, Query(alias="from")] = None,
    end: Annotated[DbText | None, Query(alias="to")] = None,
    currency: DbText | None = None,
    segment: DbText | None = None,
) -> Response:
    """The dashboard; without a finance or ops key, a redirect to the login form."""
    key = _key_of(request)
    viewer = _viewer(request)
    if viewer is None:
        if key:  # a key header that is not good enough
            return _login_page(request, "That key cannot read reports.", 401)
        target = _safe_next(str(request.url.path) + _query(request))
        return RedirectResponse(f"{COOKIE_PATH}/login?{urlencode({'next': target})}", 303)
    now = datetime.now(UTC)
    shown = period(start, end, currency, segment, now.date())
    f = shown.filters
    page = build_page(shown, now)
    query = {k: v for k, v in f.model_dump(mode="json").items() if v}
    query = {"from": query.pop("start"), "to": query.pop("end"), **query}
    html = _templates.get_template("dashboard.html").render(
        page=page,
        actor=viewer.actor,
        csrf=viewer.csrf,
        query=urlencode(query),
        tables=TABLES,
    )
    return HTMLResponse(html, headers=_no_store())


@router.get("/csv/{name:path}")
def export(
    request: Request,
    name: str,
    start: Annotated[Day | None, Query(alias="from")] = None,
    end: Annotated[Day | None, Query(alias="to")] = None,
    currency: DbText | None = None,
    segment: DbText | None = None,
) -> Response:
    """CSV of one report table, for the dashboard's download links (cookie access)."""
    if _viewer(request) is None:
        raise HTTPException(401, "log in at /dashboard first")
    table = TABLES.get(name)
    if table is None:
        raise HTTPException(404, f"no report table {name!r}")
    f = report_filters(start, end, currency, segment)
    with reading() as conn:
        rows = list(table.compute(conn, f, datetime.now(UTC)))
    response = csv_response(table, f, rows)
    response.headers.update(_no_store())
    return response
