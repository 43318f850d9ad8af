"""The finance dashboard in headless Chromium (Debian's, driven by Playwright): the real web
app on a seeded ledger, logged in through the form, every chart drawn, no console error,
and the headline numbers on the page equal to the API's. Saves ``docs/dashboard.png``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, ViewportSize

from tests.support.admin import bearer, make_key
from tests.support.servers import WebServer
from tests.support.synthetic import seed

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
PERIOD = {"from": "2026-10-01", "to": "2026-11-01"}
CHARTS = (
    "recovery-by-month",
    "amounts-by-month",
    "recovery-by-decline-class",
    "failure-reasons",
    "email-funnel",
    "ab-comparison",
    "recovered-by-channel",
    "days-to-recovery",
)
HEADLINE_METRICS = (
    "failure_rate",
    "cases_opened",
    "cases_closed",
    "cases_recovered",
    "recovery_rate",
    "failed_amount",
    "recovered_amount",
    "recovery_rate_amount",
    "median_hours_to_recovery",
    "churned_subscriptions",
    "involuntary_churn_rate",
    "churned_mrr",
)


@pytest.fixture
def seeded(web: WebServer, database_url: str) -> WebServer:
    seed(database_url, 3000, verbose=False)
    return web


def _watch(page: Page) -> list[str]:
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    return problems


def _number(value: str | None) -> float | None:
    return None if value in (None, "") else float(value)


def test_dashboard_shows_the_api_numbers_and_every_chart(
    seeded: WebServer, browser: Browser
) -> None:
    key = make_key("finance", "finance-dashboard")
    api = httpx.get(
        f"{seeded.url}/api/reports/recovery", params=PERIOD, headers=bearer(key), timeout=30
    ).json()["rows"]
    assert {r["currency"] for r in api} == {"usd", "eur", "jpy"}

    context = browser.new_context(viewport=ViewportSize(width=1360, height=900))
    page = context.new_page()
    problems = _watch(page)
    query = "&".join(f"{k}={v}" for k, v in PERIOD.items())
    response = page.goto(f"{seeded.url}/dashboard?{query}")
    assert response is not None and response.status == 200
    assert page.url.startswith(f"{seeded.url}/dashboard/login?next=")
    page.fill("#key", key)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-table=recovery]")
    assert page.url.startswith(f"{seeded.url}/dashboard?")
    cookie = next(c for c in context.cookies() if c["name"] == "dunning_dashboard_key")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"

    for chart in CHARTS:
        svg = page.locator(f'svg[data-chart="{chart}"]')
        assert svg.count() == 1, chart
        assert svg.locator("rect, circle, polyline").count() > 0, f"{chart} is empty"

    for row in api:
        cells = page.locator(f'[data-table=recovery] tr[data-currency="{row["currency"]}"]')
        assert cells.count() == 1
        for metric in HEADLINE_METRICS:
            cell = cells.locator(f'[data-metric="{metric}"]')
            assert _number(cell.get_attribute("data-value")) == row[metric], (row, metric)
    usd = next(r for r in api if r["currency"] == "usd")
    card = page.locator('[data-card="recovery_rate"]')
    assert _number(card.get_attribute("data-value")) == usd["recovery_rate"]
    assert card.inner_text() == f"{usd['recovery_rate'] * 100:.1f}%"
    recovered = page.locator('[data-card="recovered_amount"]').inner_text()
    assert recovered == f"${usd['recovered_amount'] / 100:,.2f}"

    # The filters: EUR only, then a segment.
    page.select_option("select[name=currency]", "eur")
    page.click("form.filters button[type=submit]")
    page.wait_for_selector('[data-table=recovery] tr[data-currency="eur"]')
    assert page.locator("[data-table=recovery] tbody tr").count() == 1
    title = page.locator('svg[data-chart="amounts-by-month"] title').first.text_content()
    assert title is not None and "EUR" in title

    page.goto(f"{seeded.url}/dashboard?{query}")
    page.wait_for_selector("[data-table=recovery]")
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert problems == []
    context.close()
