"""The policy pages in headless Chromium: a new version with an error is refused with the
CLI's message beside its line; the fixed one is applied, previewed (retries and emails on
one time line), activated and shown side by side with the old one. Saves
``docs/console-policy-editor.png``."""

from __future__ import annotations

import httpx
from playwright.sync_api import Browser, ViewportSize

from tests.console.helpers import DOCS, browser_login, watch
from tests.support.admin import bearer, make_key
from tests.support.ledger import rows
from tests.support.servers import WebServer

LAPTOP = ViewportSize(width=1280, height=900)


def test_a_policy_with_an_error_is_refused_beside_its_line_and_a_good_one_goes_live(
    celery_worker: object, web: WebServer, browser: Browser
) -> None:
    key = make_key("ops", "bob-ops")
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    problems = watch(page)
    browser_login(page, web.url, key, "/console/policies")
    assert "default v2" in page.locator("[data-testid=activation]").inner_text()
    page.click("[data-testid=new-version]")
    page.wait_for_selector("textarea.policy")
    text = page.input_value("textarea.policy")
    assert "\nversion = 3\n" in text  # the active text, its version bumped

    # An error: refused, with the message of `dunning policy apply` beside the line.
    broken = text.replace("max_attempts = 5", "max_attempts = 0").replace(
        "retry_hours = { start = 9, end = 18 }", "retry_hours = { start = 19, end = 18 }"
    )
    page.fill("textarea.policy", broken)
    page.click("button[value=apply]")
    page.wait_for_selector("[data-testid=problems]")
    lines = broken.splitlines()
    marked = page.locator(f'[data-problem-line="{lines.index("max_attempts = 0") + 1}"]')
    assert "max_attempts = 0" in marked.inner_text()
    assert "limits.max_attempts: Input should be greater than or equal to 1" in marked.inner_text()
    hours = lines.index("retry_hours = { start = 19, end = 18 }") + 1
    assert (
        "timing.retry_hours: start (19) must be before end (18)"
        in page.locator(f'[data-problem-line="{hours}"]').inner_text()
    )
    assert page.input_value("textarea.policy") == broken  # the text is kept to fix
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(DOCS / "console-policy-editor.png"))
    assert rows("SELECT count(*) AS n FROM retry_policies") == [{"n": 1}]

    # Fixed: checked (previewed, nothing stored), then applied.
    good = text.replace("max_attempts = 5", "max_attempts = 4")
    page.fill("textarea.policy", good)
    page.click("button[value=check]")
    page.wait_for_selector("[data-testid=checked]")
    assert page.locator("table[data-table=schedule] tr[data-kind=email]").count() >= 2
    page.click("button[value=apply]")
    page.wait_for_selector("[data-testid=done]")
    assert page.locator("h2").first.inner_text().startswith("default v3")
    assert page.locator("[data-testid=status]").inner_text() == "inactive"

    # Its preview: retries and emails on one time line, in words and in the chart.
    schedule = page.locator("table[data-table=schedule]")
    assert schedule.locator("tr[data-kind=retry]").count() >= 1
    assert schedule.locator("tr[data-kind=email]").count() >= 2
    chart = page.locator('svg[data-chart="schedule"]')
    assert chart.locator('[data-kind="retry"]').count() >= 1
    assert chart.locator('[data-kind="email"]').count() >= 2
    page.select_option("select[name=decline_code]", "stolen_card")
    page.click("form[aria-label='made-up failure'] button[type=submit]")
    page.wait_for_selector("table[data-table=schedule] tr[data-kind=wait_for_card]")

    # Activated, after a confirmation that says what it does.
    page.click("details[data-action=activate] summary")
    assert "open keep the version" in page.locator("details[data-action=activate]").inner_text()
    page.click("details[data-action=activate] button[type=submit]")
    page.wait_for_selector("[data-testid=done]")
    assert page.locator("[data-testid=status]").inner_text() == "active"
    listed = httpx.get(f"{web.url}/api/policies", headers=bearer(key), timeout=10).json()
    assert {(p["version"], p["status"]) for p in listed} == {(2, "inactive"), (3, "active")}
    audit = rows(
        "SELECT actor, action FROM audit_log WHERE target_type = 'retry_policy' ORDER BY id"
    )
    assert audit[-2:] == [
        {"actor": "bob-ops", "action": "policy.apply"},
        {"actor": "bob-ops", "action": "policy.activate"},
    ]

    # The two versions side by side: the one changed line.
    page.goto(f"{web.url}/console/policies")
    page.click("[data-policy='default v2'] a:has-text('diff with active')")
    changed = page.locator("table[data-table=diff] tr.changed")
    assert changed.count() == 2  # the version and max_attempts
    assert "max_attempts = 4" in changed.nth(1).inner_text()
    # The refused policy's page is a 422 (Chromium logs it); nothing else went wrong.
    assert [p for p in problems if "status of 422" not in p] == []
    assert len(problems) == 1
    context.close()
