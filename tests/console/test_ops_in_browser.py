"""Ops in headless Chromium against the real web app, Postgres, Redis, a Celery worker
and localstripe: log in, find a demo customer by email, read the case, pause and resume
it, and find both in the audit log. Saves ``docs/console-queue.png`` and
``docs/console-case.png`` for the README."""

from __future__ import annotations

import httpx
from playwright.sync_api import Browser, ViewportSize

from dunning import demo
from dunning.events.reconcile import reconcile
from dunning.processors.stripe_adapter import StripeAdapter
from tests.console.helpers import DOCS, browser_login, watch
from tests.support import sandbox
from tests.support.admin import bearer, make_key
from tests.support.ledger import all_handled, rows, wait_until
from tests.support.servers import WebServer

LAPTOP = ViewportSize(width=1280, height=900)
PHONE = ViewportSize(width=390, height=844)


def _demo_cases(base: str) -> None:
    """The demo's three customers on localstripe; Grace's card fails, so her case opens."""
    demo.seed(base)
    reconcile(StripeAdapter(sandbox.API_KEY, base))
    wait_until(all_handled, timeout=60, what="the reconciled events applied by the worker")
    wait_until(
        lambda: bool(rows("SELECT id FROM dunning_cases WHERE state = 'open'")),
        what="Grace's case opened",
    )


def test_ops_finds_a_demo_customer_and_pauses_and_resumes_the_case(
    processor: str, celery_worker: object, web: WebServer, browser: Browser
) -> None:
    _demo_cases(processor)
    key = make_key("ops", "alice-ops")
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    problems = watch(page)
    browser_login(page, web.url, key)
    cookie = next(c for c in context.cookies() if c["name"] == "dunning_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and key not in cookie["value"]

    # The queue: counts per state, then a search by email.
    assert page.locator('[data-testid=state-counts] [data-state="open"] b').inner_text() == "1"
    page.fill("input[name=q]", "grace@example.com")
    page.click("form.filters button[type=submit]")
    page.wait_for_selector("table[data-table=cases]")
    found = page.locator("table[data-table=cases] tbody tr")
    assert found.count() == 1 and "Grace Hopper" in found.inner_text()
    page.screenshot(path=str(DOCS / "console-queue.png"), full_page=True)
    found.locator("a").first.click()
    page.wait_for_selector("[data-testid=timeline]")
    case_id = int(page.url.rsplit("/", 1)[-1].split("?")[0])

    # The case: customer, invoice, card, the failed attempt and the next retry.
    assert "grace@example.com" in page.locator("[data-testid=customer]").inner_text()
    assert "$49.00" in page.locator("[data-testid=invoice]").inner_text()
    assert "0341" in page.locator("[data-testid=card]").inner_text()
    timeline = page.locator("[data-testid=timeline]")
    assert "charge attempt" in timeline.inner_text() and ": failed" in timeline.inner_text()
    assert timeline.locator("li[data-source=decision]").count() >= 1
    assert page.locator("[data-testid=next] li[data-kind=retry_charge]").count() == 1
    page.click("details[data-action=retry-now] summary")  # says what the networks allow
    assert "card network rules" in page.locator("[data-testid=verdict-retry-now]").inner_text()
    page.screenshot(path=str(DOCS / "console-case.png"), full_page=True)

    # Pause, with a confirmation that says what it does; the page and the API agree.
    page.click("details[data-action=pause] summary")
    assert "canceled until you resume" in page.locator("details[data-action=pause]").inner_text()
    page.click("details[data-action=pause] button[type=submit]")
    page.wait_for_selector("[data-testid=done]")
    assert page.locator("[data-testid=paused]").is_visible()
    assert "Paused" in page.locator("[data-testid=next]").inner_text()
    api = httpx.get(f"{web.url}/api/cases/{case_id}", headers=bearer(key), timeout=10).json()
    assert api["paused"] is True and api["state"] == "open"

    page.click("details[data-action=resume] summary")
    page.click("details[data-action=resume] button[type=submit]")
    page.wait_for_selector("[data-testid=done]")
    assert page.locator("[data-testid=paused]").count() == 0
    api = httpx.get(f"{web.url}/api/cases/{case_id}", headers=bearer(key), timeout=10).json()
    assert api["paused"] is False

    audit = rows(
        "SELECT actor, action FROM audit_log WHERE target_type = 'case' AND target_id = :c "
        "ORDER BY id",
        c=str(case_id),
    )
    assert audit == [
        {"actor": "alice-ops", "action": "case.pause"},
        {"actor": "alice-ops", "action": "case.resume"},
    ]
    ops_lines = page.locator("[data-testid=timeline] li[data-source=ops]").all_inner_texts()
    assert len(ops_lines) == 2 and "case.pause by alice-ops" in ops_lines[0]

    # Readable on a phone: nothing wider than the screen but the boxes that scroll.
    phone = browser.new_context(viewport=PHONE)
    phone.add_cookies(
        [{"name": c["name"], "value": c["value"], "url": web.url} for c in context.cookies()]
    )
    small = phone.new_page()
    small.goto(f"{web.url}/console/cases/{case_id}")
    width = small.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    phone.close()
    assert problems == []
    context.close()
