"""``/dashboard``: the finance dashboard, rendered on the server with inline SVG charts.

Access: an API key with role ``finance`` or ``ops``, sent as ``X-API-Key`` /
``Authorization: Bearer``, or entered once in the login form, which keeps it in an
HttpOnly, SameSite=Strict cookie scoped to ``/dashboard``. Every number on the page comes
from the same metric functions as ``/api/reports``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from dunning.admin.actors import Actor
from dunning.admin.auth import READ_ROLES
from dunning.admin.keys import authenticate
from dunning.db import session_scope
from dunning.reports import charts, schemas
from dunning.reports.routes import csv_response, report_filters
from dunning.reports.schemas import Filters
from dunning.reports.tables import TABLES, reading

router = APIRouter(prefix="/dashboard", include_in_schema=False)

COOKIE = "dunning_dashboard_key"
COOKIE_PATH = "/dashboard"
COOKIE_MAX_AGE = 8 * 3600
TREND_MONTHS = 12
_MAX_FORM_BYTES = 4096

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


# --- formatting --------------------------------------------------------------------------


def fmt_rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def fmt_money(amount: int | None, currency: str) -> str:
    if amount is None:
        return "-"
    from dunning.notify.formatting import format_money, minor_unit_exponent

    try:
        return format_money(int(amount), currency.upper(), "en")
    except (ValueError, LookupError):
        exponent = minor_unit_exponent(currency.upper()) if len(currency) == 3 else 2
        return f"{Decimal(int(amount)).scaleb(-exponent):,} {currency.upper()}"


def fmt_days(hours: float | None) -> str:
    return "-" if hours is None else f"{hours / 24:.1f} d"


_templates.filters.update(rate=fmt_rate, money=fmt_money, days=fmt_days)


def _value(value: Any) -> str:
    """The exact value behind a formatted cell, for ``data-value`` (repr of floats)."""
    if value is None:
        return ""
    return repr(value) if isinstance(value, float) else str(value)


_templates.filters["exact"] = _value


# --- access --------------------------------------------------------------------------------


def _key_of(request: Request) -> str | None:
    header = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return header or request.cookies.get(COOKIE)


def _reader(key: str | None) -> Actor | None:
    if not key:
        return None
    with session_scope() as session:
        actor = authenticate(session, key.strip())
    return actor if actor is not None and actor.role in READ_ROLES else None


def _login_page(request: Request, error: str | None, status: int) -> HTMLResponse:
    html = _templates.get_template("login.html").render(
        error=error, next=_safe_next(str(request.url.path) + _query(request))
    )
    return HTMLResponse(html, status_code=status, headers=_no_store())


@router.get("/login", response_class=HTMLResponse)
def login_form(next: str | None = None) -> HTMLResponse:
    """The login form: an API key with the finance or ops role."""
    html = _templates.get_template("login.html").render(error=None, next=_safe_next(next))
    return HTMLResponse(html, headers=_no_store())


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
    """Check the key from the form; on success keep it in the dashboard cookie."""
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        raise HTTPException(413, "form too large")
    form = parse_qs(body.decode("utf-8", errors="replace"))
    key = (form.get("key") or [""])[0].strip()
    target = _safe_next((form.get("next") or [COOKIE_PATH])[0])
    with_key = await _run(_reader, key)
    if with_key is None:
        html = _templates.get_template("login.html").render(
            error="That key is unknown, revoked, or has no finance or ops role.", next=target
        )
        return HTMLResponse(html, status_code=401, headers=_no_store())
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        key,
        max_age=COOKIE_MAX_AGE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse(COOKIE_PATH, status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return response


async def _run(fn: Any, *args: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


# --- the page --------------------------------------------------------------------------------


def _months_before(end: date, months: int) -> date:
    """The first day of the month ``months - 1`` months before the one holding ``end - 1``."""
    last = end - timedelta(days=1)
    index = last.year * 12 + last.month - 1 - (months - 1)
    return date(index // 12, index % 12 + 1, 1)


@dataclass
class Page:
    """Everything the template shows, all from the report tables."""

    filters: Filters
    chart_currency: str | None
    currencies: list[str]
    segments: list[str]
    headline: list[schemas.HeadlineRow]
    channels: list[schemas.ChannelRow]
    churn: list[schemas.ChurnRow]
    arms: list[schemas.ArmRow]
    funnel: list[schemas.FunnelRow]
    at_risk: list[schemas.AtRiskSummaryRow]
    charts: dict[str, Markup]
    trend_start: date
    as_of: datetime


def build_page(f: Filters, as_of: datetime) -> Page:
    """Compute every table the dashboard shows, in one read-only transaction."""
    from dunning.reports import metrics

    with reading() as conn:

        def rows(name: str, filters: Filters = f) -> list[Any]:
            return list(TABLES[name].compute(conn, filters, as_of))

        all_currencies = f.model_copy(update={"currency": None})
        everything = rows("recovery", all_currencies)
        currencies = [r.currency for r in everything]
        headline = [r for r in everything if f.currency is None or r.currency == f.currency]
        chart_currency = f.currency or (
            max(headline, key=lambda r: (r.cases_opened, r.renewals_attempted)).currency
            if headline
            else None
        )
        if f.currency and f.currency not in currencies:
            currencies.append(f.currency)
        in_currency = f.model_copy(update={"currency": chart_currency})
        trend_start = _months_before(f.end, TREND_MONTHS)
        trend = rows("monthly", in_currency.model_copy(update={"start": trend_start}))
        by_class = rows("breakdown/decline_class", in_currency)
        by_code = rows("breakdown/decline_code", in_currency)
        channels = rows("channels")
        page = Page(
            filters=f,
            chart_currency=chart_currency,
            currencies=sorted(currencies),
            segments=metrics.segments(conn),
            headline=headline,
            channels=channels,
            churn=rows("churn"),
            arms=rows("ab"),
            funnel=rows("funnel"),
            at_risk=rows("at-risk/summary"),
            charts={},
            trend_start=trend_start,
            as_of=as_of,
        )
        days = rows("recovery-days", in_currency)
    page.charts = _charts(page, trend, by_class, by_code, days)
    return page


def _charts(
    page: Page,
    trend: list[schemas.MonthRow],
    by_class: list[schemas.BreakdownRow],
    by_code: list[schemas.BreakdownRow],
    days: list[schemas.RecoveryDayRow],
) -> dict[str, Markup]:
    cur = (page.chart_currency or "").upper()
    months: list[date] = []
    m = page.trend_start
    while m < page.filters.end:
        months.append(m)
        m = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
    by_month = {r.month: r for r in trend}
    labels = [m.strftime("%b %y") for m in months]
    rows = [by_month.get(m) for m in months]
    money = _money_axis(page.chart_currency or "usd")
    top_codes = by_code[:10]
    arms = [charts.Interval(a.policy, a.recovery_rate, a.ci_low, a.ci_high, a.n) for a in page.arms]
    funnel_total = [
        ("Sent", sum(r.sent for r in page.funnel)),
        ("Link opened", sum(r.link_opened for r in page.funnel)),
        ("Card updated", sum(r.card_updated for r in page.funnel)),
        ("Paid", sum(r.paid for r in page.funnel)),
    ]
    day_counts = {d.day: d.cases for d in days}
    channel_rows = [c for c in page.channels if c.currency == page.chart_currency]
    return {
        "recovery-by-month": charts.line_chart(
            "recovery-by-month",
            f"Recovery rate by month of failure ({cur})",
            labels,
            [
                charts.Series("by count", [r.recovery_rate if r else None for r in rows]),
                charts.Series("by amount", [r.recovery_rate_amount if r else None for r in rows]),
            ],
            charts.percent,
            y_max=1.0,
        ),
        "amounts-by-month": charts.bar_chart(
            "amounts-by-month",
            f"Failed vs recovered amount by month ({cur})",
            labels,
            [
                charts.Series("failed", [r.failed_amount if r else 0 for r in rows]),
                charts.Series("recovered", [r.recovered_amount if r else 0 for r in rows]),
            ],
            money,
        ),
        "recovery-by-decline-class": charts.bar_chart(
            "recovery-by-decline-class",
            f"Recovery rate by decline class ({cur})",
            [r.value for r in by_class],
            [charts.Series("recovery rate", [r.recovery_rate for r in by_class])],
            charts.percent,
            y_max=1.0,
            notes=[f"n={r.cases_closed:,}" for r in by_class],
        ),
        "failure-reasons": charts.bar_chart(
            "failure-reasons",
            f"Failure reasons: cases by first decline code ({cur})",
            [r.value for r in top_codes],
            [charts.Series("cases", [float(r.cases_opened) for r in top_codes])],
            charts.plain,
        ),
        "email-funnel": charts.funnel_chart(
            "email-funnel", "Email funnel: all dunning steps", funnel_total
        ),
        "ab-comparison": charts.interval_chart(
            "ab-comparison", "Recovery rate by policy (95% Wilson interval)", arms
        ),
        "recovered-by-channel": charts.bar_chart(
            "recovered-by-channel",
            f"Recovered revenue by channel ({cur})",
            [c.channel for c in channel_rows],
            [charts.Series("recovered", [float(c.amount) for c in channel_rows])],
            money,
        ),
        "days-to-recovery": charts.bar_chart(
            "days-to-recovery",
            f"Recoveries by day since failure ({cur}; last bar: 30+)",
            [str(d) for d in range(31)],
            [charts.Series("cases", [float(day_counts.get(d, 0)) for d in range(31)])],
            charts.plain,
        ),
    }


def _money_axis(currency: str) -> charts.Format:
    from dunning.notify.formatting import minor_unit_exponent

    try:
        exponent = minor_unit_exponent(currency.upper())
    except (ValueError, LookupError):
        exponent = 2

    def fmt(value: float) -> str:
        major = value / 10**exponent
        if major >= 1_000_000:
            return f"{major / 1_000_000:.1f}M"
        if major >= 10_000:
            return f"{major / 1_000:.0f}k"
        if major >= 1_000:
            return f"{major / 1_000:.1f}k"
        return f"{major:.0f}"

    return fmt


@router.get("", response_class=HTMLResponse)
def dashboard(
    request: Request,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
    currency: str | None = None,
    segment: str | None = None,
) -> Response:
    """The dashboard; without a finance or ops key, a redirect to the login form."""
    key = _key_of(request)
    actor = _reader(key)
    if actor is None:
        if key and COOKIE not in request.cookies:  # a key header that is not good enough
            return _login_page(request, "That key cannot read reports.", 401)
        target = _safe_next(str(request.url.path) + _query(request))
        return RedirectResponse(f"{COOKIE_PATH}/login?{urlencode({'next': target})}", 303)
    f = report_filters(start, end, currency, segment)
    page = build_page(f, datetime.now(UTC))
    query = {k: v for k, v in f.model_dump(mode="json").items() if v}
    query = {"from": query.pop("start"), "to": query.pop("end"), **query}
    html = _templates.get_template("dashboard.html").render(
        page=page,
        actor=actor,
        query=urlencode(query),
        tables=TABLES,
    )
    return HTMLResponse(html, headers=_no_store())


@router.get("/csv/{name:path}")
def export(
    request: Request,
    name: str,
    start: Annotated[date | None, Query(alias="from")] = None,
    end: Annotated[date | None, Query(alias="to")] = None,
    currency: str | None = None,
    segment: str | None = None,
) -> Response:
    """CSV of one report table, for the dashboard's download links (cookie access)."""
    if _reader(_key_of(request)) is None:
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
