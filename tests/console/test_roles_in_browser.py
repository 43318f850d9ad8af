"""Roles, CSRF and sessions in headless Chromium: a finance session sees no action button
and its forged ops POSTs (with or without the CSRF token) are refused; an ops POST without
the token is refused; an expired or tampered cookie, or a logout, leads to the login page."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import time_machine
from playwright.sync_api import Browser, BrowserContext

from dunning.admin.sessions import COOKIE, SessionData, dump_session
from dunning.settings import get_settings
from tests.console.helpers import browser_login, watch
from tests.support.admin import make_key
from tests.support.cases import case_row, fail_invoice
from tests.support.ledger import rows
from tests.support.servers import WebServer


def _forge(context: BrowserContext, url: str, csrf: str | None) -> int:
    """A POST from the page's own browser context (its cookies), as a forged form would."""
    form: dict[str, str | float | bool] = {} if csrf is None else {"csrf": csrf}
    answer = context.request.post(url, form=form, max_redirects=0)
    return answer.status


def _session_cookie(context: BrowserContext) -> str:
    return next(c["value"] for c in context.cookies() if c["name"] == COOKIE)


def test_finance_reads_only_and_every_ops_post_needs_the_token_and_the_role(
    web: WebServer, browser: Browser
) -> None:
    fail_invoice("in_roles", created=int(time.time()))
    case_id = int(case_row("in_roles")["id"])
    case_url = f"{web.url}/console/cases/{case_id}"

    finance = browser.new_context()
    page = finance.new_page()
    problems = watch(page)
    browser_login(page, web.url, make_key("finance", "fay-finance"), f"/console/cases/{case_id}")
    assert "(read only)" in page.locator("[data-testid=who]").inner_text()
    assert page.locator("[data-testid=timeline]").is_visible()
    assert page.locator("[data-testid=actions]").count() == 0
    assert page.locator("form[action*='/console/cases/']").count() == 0
    page.goto(f"{web.url}/console/policies/1")
    assert page.locator("[data-testid=actions]").count() == 0
    token = page.locator("input[name=csrf]").first.get_attribute("value")  # the logout form's
    assert token
    assert _forge(finance, f"{case_url}/pause", None) == 403
    assert _forge(finance, f"{case_url}/pause", token) == 403
    assert _forge(finance, f"{web.url}/console/policies/1/activate", token) == 403
    assert rows("SELECT paused FROM dunning_cases WHERE id = :c", c=case_id) == [{"paused": False}]

    ops = browser.new_context()
    ops_page = ops.new_page()
    browser_login(ops_page, web.url, make_key("ops", "olga-ops"), f"/console/cases/{case_id}")
    assert ops_page.locator("details[data-action=pause]").count() == 1
    assert _forge(ops, f"{case_url}/pause", None) == 403
    assert _forge(ops, f"{case_url}/pause", token) == 403  # finance's token is not olga's
    assert rows("SELECT paused FROM dunning_cases WHERE id = :c", c=case_id) == [{"paused": False}]
    assert rows("SELECT count(*) AS n FROM audit_log WHERE target_type = 'case'") == [{"n": 0}]
    own = ops_page.locator("details[data-action=pause] input[name=csrf]").get_attribute("value")
    assert _forge(ops, f"{case_url}/pause", own) == 303  # the form's own token works
    assert rows("SELECT paused FROM dunning_cases WHERE id = :c", c=case_id) == [{"paused": True}]

    # A tampered cookie: the login page, and the page asked for after it.
    valid = _session_cookie(ops)
    payload, rest = valid.split(".", 1)
    tampered = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + rest
    ops.add_cookies([{"name": COOKIE, "value": tampered, "url": web.url}])
    ops_page.goto(case_url)
    assert ops_page.url.startswith(f"{web.url}/console/login?")
    assert "could not be read" in ops_page.locator("main").inner_text()

    # An expired one (signed nine hours ago for a live key): the login page too.
    key_id = rows("SELECT id FROM api_keys WHERE name = 'olga-ops'")[0]["id"]
    with time_machine.travel(datetime.now(UTC) - timedelta(hours=9), tick=False):
        old = dump_session(SessionData(csrf="x" * 43, key_id=key_id), get_settings())
    ops.add_cookies([{"name": COOKIE, "value": old, "url": web.url}])
    ops_page.goto(case_url)
    assert ops_page.url.startswith(f"{web.url}/console/login?")
    assert "expired" in ops_page.locator("main").inner_text()
    ops_page.fill("#key", "dk_ops_not_a_key")
    ops_page.click("form.login button[type=submit]")
    assert "unknown" in ops_page.locator("[data-testid=login-error]").inner_text()

    # Logging out ends the session in this browser.
    page.goto(f"{web.url}/console/cases")
    page.click("header form button[type=submit]")
    page.wait_for_url(f"{web.url}/console/login?*")
    page.goto(case_url)
    assert page.url.startswith(f"{web.url}/console/login?")
    assert [p for p in problems if "status of 40" not in p] == []
    finance.close()
    ops.close()
