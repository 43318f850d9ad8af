"""``/api/reports``: JSON equals the metric functions, CSV round-trips, roles are enforced."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

import httpx
import pytest

from dunning.admin.keys import revoke_api_key
from dunning.db import get_engine, session_scope
from dunning.reports.csvio import from_csv
from dunning.reports.metrics.headline import headline
from dunning.reports.schemas import Filters
from dunning.reports.tables import TABLES
from tests.support.admin import bearer, make_key
from tests.support.report_ledger import at, insert_ledger
from tests.support.servers import WebServer

PERIOD = {"from": "2026-10-01", "to": "2026-11-01"}
OCTOBER = Filters(start=date(2026, 10, 1), end=date(2026, 11, 1))
AS_OF = at(11, 1).isoformat()


@pytest.fixture
def finance(web: WebServer) -> Iterator[httpx.Client]:
    with get_engine().begin() as conn:
        insert_ledger(conn)
    key = make_key("finance", "finance-reports")
    with httpx.Client(base_url=web.url, headers=bearer(key), timeout=30) as client:
        yield client


def test_every_table_as_json_and_csv_round_trip(finance: httpx.Client) -> None:
    listed = finance.get("/api/reports").json()
    assert [t["name"] for t in listed] == list(TABLES)
    for name, table in TABLES.items():
        params = {**PERIOD, "as_of": AS_OF}
        body = finance.get(f"/api/reports/{name}", params=params)
        assert body.status_code == 200, (name, body.text)
        data = body.json()
        assert data["filters"] == {
            "start": "2026-10-01",
            "end": "2026-11-01",
            "currency": None,
            "segment": None,
        }
        rows = [table.row.model_validate(r) for r in data["rows"]]
        assert rows, f"{name}: the ledger should give rows"
        got = finance.get(f"/api/reports/{name}", params={**params, "format": "csv"})
        assert got.status_code == 200
        assert got.headers["content-type"].startswith("text/csv")
        assert "attachment" in got.headers["content-disposition"]
        assert from_csv(table.row, got.text) == rows, name


def test_json_numbers_are_the_metric_functions(finance: httpx.Client) -> None:
    data = finance.get("/api/reports/recovery", params=PERIOD).json()
    with get_engine().connect() as conn:
        expected = headline(conn, OCTOBER)
    assert data["rows"] == [r.model_dump(mode="json") for r in expected]
    usd = next(r for r in data["rows"] if r["currency"] == "usd")
    assert (usd["recovery_rate"], usd["recovered_amount"], usd["churned_subscriptions"]) == (
        5 / 9,
        17000,
        3,
    )


def test_filters(finance: httpx.Client) -> None:
    eur = finance.get("/api/reports/recovery", params={**PERIOD, "currency": "EUR"}).json()
    assert [r["currency"] for r in eur["rows"]] == ["eur"]
    assert eur["filters"]["currency"] == "eur"
    smb = finance.get("/api/reports/breakdown/segment", params={**PERIOD, "segment": "smb"})
    assert {r["value"] for r in smb.json()["rows"]} == {"smb"}
    arms = finance.get("/api/reports/ab", params=PERIOD).json()["rows"]
    assert {(a["policy"], a["n"]) for a in arms} == {("default v1", 7), ("paydays v1", 4)}
    backwards = {"from": "2026-11-01", "to": "2026-10-01"}
    assert finance.get("/api/reports/recovery", params=backwards).status_code == 422
    assert finance.get("/api/reports/recovery", params={"currency": "dollars"}).status_code == 422
    assert finance.get("/api/reports/recovery", params={"format": "xml"}).status_code == 422


def test_default_period_is_last_full_month(finance: httpx.Client) -> None:
    data = finance.get("/api/reports/recovery").json()
    start, end = (
        date.fromisoformat(data["filters"]["start"]),
        date.fromisoformat(data["filters"]["end"]),
    )
    assert end.day == 1 and start.day == 1 and (end - start).days in (28, 29, 30, 31)


def test_requests_without_a_reading_role_are_refused(web: WebServer) -> None:
    anonymous = httpx.Client(base_url=web.url, timeout=10)
    assert anonymous.get("/api/reports/recovery", params=PERIOD).status_code == 401
    assert anonymous.get("/api/reports/recovery?format=csv").status_code == 401
    wrong = anonymous.get("/api/reports/channels", headers=bearer("dk_finance_nope"))
    assert wrong.status_code == 401
    key = make_key("finance", "revoked-finance")
    assert anonymous.get("/api/reports/ab", headers=bearer(key)).status_code == 200
    with session_scope() as session:
        revoke_api_key(session, "revoked-finance", actor="tests")
    assert anonymous.get("/api/reports/ab", headers=bearer(key)).status_code == 401
    ops = make_key("ops", "ops-reader")
    assert anonymous.get("/api/reports/ab", headers={"X-API-Key": ops}).status_code == 200
    # The dashboard and its CSV downloads too.
    page = anonymous.get("/dashboard", params=PERIOD)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/dashboard/login?next=%2Fdashboard%3Ffrom")
    assert "API key" in anonymous.get(page.headers["location"]).text
    refused = anonymous.get("/dashboard", headers=bearer("dk_finance_nope"))
    assert refused.status_code == 401
    assert anonymous.get("/dashboard/csv/recovery").status_code == 401
    bad = anonymous.post("/dashboard/login", content="key=dk_nope&next=/dashboard",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    # A login form that did not come from our page (no CSRF token) is refused first.
    assert bad.status_code == 403
    assert anonymous.get("/dashboard").status_code == 303  # and logged nobody in


def test_login_sets_a_session_cookie_and_forms_need_the_csrf_token(web: WebServer) -> None:
    key = make_key("finance", "finance-login")
    client = httpx.Client(base_url=web.url, timeout=30)
    form = client.get("/dashboard/login").text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None
    login = client.post(
        "/dashboard/login",
        content=str(
            httpx.QueryParams({"key": key, "next": "https://evil.example/", "csrf": token[1]})
        ),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert login.status_code == 303 and login.headers["location"] == "/dashboard"
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie
    assert key.lower() not in cookie  # the browser holds a session, never the key
    page = client.get("/dashboard", params=PERIOD)
    assert page.status_code == 200 and 'data-chart="recovery-by-month"' in page.text
    csv = client.get("/dashboard/csv/channels", params=PERIOD)
    assert csv.status_code == 200 and csv.text.startswith("currency,channel,")
    assert client.post("/dashboard/logout").status_code == 403  # no CSRF token
    logout_token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert logout_token is not None
    client.post(
        "/dashboard/logout",
        content=f"csrf={logout_token[1]}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert client.get("/dashboard").status_code == 303


def test_openapi_describes_the_reports(web: WebServer) -> None:
    spec = httpx.get(f"{web.url}/openapi.json", timeout=10).json()
    assert "/api/reports/recovery" in spec["paths"]
    assert "/api/reports/breakdown/decline_class" in spec["paths"]
    assert "HeadlineRow" in spec["components"]["schemas"]
    assert not any(p.startswith("/dashboard") for p in spec["paths"])
