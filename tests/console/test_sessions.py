"""Sessions over HTTP against the real web app: the cookie holds no key and has the right
flags, the login form has its CSRF token and is throttled, a revoked key ends its
sessions, and the dashboard is behind the same login."""

from __future__ import annotations

import httpx

from dunning.admin.keys import revoke_api_key
from dunning.db import session_scope
from tests.console.helpers import csrf_of, login
from tests.support.admin import bearer, make_key
from tests.support.servers import WebServer


def _client(web: WebServer, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=web.url, timeout=30, headers=headers)


def test_the_session_cookie_holds_no_key_and_has_the_right_flags(web: WebServer) -> None:
    key = make_key("ops", "ops-cookie")
    with _client(web) as browser:
        first = browser.get("/console/cases", params={"q": "x"})
        assert first.status_code == 303
        assert first.headers["location"] == "/console/login?next=%2Fconsole%2Fcases%3Fq%3Dx"
        done = login(browser, key, "/console/cases?q=x")
        assert done.status_code == 303 and done.headers["location"] == "/console/cases?q=x"
        cookie = done.headers["set-cookie"]
        assert cookie.startswith("dunning_session=") and key not in cookie
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "path=/", "samesite=lax", "max-age=28800"} <= flags
        assert "secure" not in flags  # plain HTTP here
        page = browser.get("/console/cases")
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert browser.post("/console/logout", data={"csrf": csrf_of(page.text)}).status_code == 303
        assert browser.get("/console/cases").status_code == 303
    with _client(web, **{"X-Forwarded-Proto": "https"}) as https:  # behind a TLS proxy
        assert "secure" in login(https, key).headers["set-cookie"].lower()


def test_the_login_form_needs_its_token_and_goes_nowhere_else(web: WebServer) -> None:
    key = make_key("finance", "finance-csrf")
    with _client(web) as browser:
        browser.get("/console/login")
        refused = browser.post("/console/login", data={"key": key, "next": "/console"})
        assert refused.status_code == 403 and "expired or did not come from" in refused.text
    for elsewhere in ("https://evil.example/", "//evil.example/x", "/console\\@evil.example"):
        with _client(web) as browser:
            done = login(browser, key, elsewhere)
            assert done.status_code == 303 and done.headers["location"] == "/console"


def test_five_failed_logins_in_a_minute_slow_the_address_down(web: WebServer) -> None:
    key = make_key("ops", "ops-throttle")
    with _client(web) as browser:
        for _ in range(5):
            assert login(browser, "dk_ops_wrong").status_code == 401
        slowed = login(browser, key)  # the right key, but not now
        assert slowed.status_code == 429 and int(slowed.headers["retry-after"]) > 0
        assert "Too many failed logins" in slowed.text
        assert "dunning_session=" in slowed.headers.get("set-cookie", "")  # anonymous only
        assert browser.get("/console/cases").status_code == 303


def test_a_revoked_key_ends_its_sessions(web: WebServer) -> None:
    key = make_key("ops", "ops-revoked")
    with _client(web) as browser:
        assert login(browser, key).status_code == 303
        assert browser.get("/console/alerts").status_code == 200
        with session_scope() as session:
            revoke_api_key(session, "ops-revoked", actor="tests")
        gone = browser.get("/console/alerts")
        assert gone.status_code == 303 and "why=revoked" in gone.headers["location"]


def test_the_dashboard_is_behind_the_same_login(web: WebServer) -> None:
    key = make_key("finance", "finance-dashboard-login")
    with _client(web) as browser:
        page = browser.get("/dashboard")
        assert page.status_code == 303
        form = browser.get(page.headers["location"])
        assert form.status_code == 200 and 'name="csrf"' in form.text
        assert browser.get("/dashboard/csv/channels").status_code == 401
        assert login(browser, key, "/dashboard").headers["location"] == "/dashboard"
        assert browser.get("/dashboard").status_code == 200
        assert browser.get("/dashboard/csv/channels").status_code == 200
        assert browser.get("/dashboard/login").headers["location"] == "/dashboard"
        assert browser.post("/dashboard/logout").status_code == 403  # no CSRF token
        token = csrf_of(browser.get("/dashboard").text)
        assert browser.post("/dashboard/logout", data={"csrf": token}).status_code == 303
        assert browser.get("/dashboard").status_code == 303
    with _client(web) as browser:  # the dashboard's form goes back to the dashboard
        form = browser.get("/dashboard/login")
        elsewhere = {"key": key, "csrf": csrf_of(form.text), "next": "https://evil.example/"}
        assert browser.post("/dashboard/login", data=elsewhere).headers["location"] == "/dashboard"
    with _client(web, **bearer(key)) as api:  # a key in a header still reads it
        assert api.get("/dashboard").status_code == 200
        assert api.get("/dashboard", headers=bearer("dk_finance_nope")).status_code == 401
