"""The finance dashboard in headless Chromium (Debian's, driven by Playwright): the real web
app on a seeded ledger, logged in through the form, every chart drawn, no console error,
and the headline numbers on the page equal to the API's. Saves ``docs/dashboard.png``.

Then a new install's dashboard (a few cases from minutes ago, as after the demo) on a
phone: the last 30 days by default, minutes as minutes, named funnel steps, whole-number
and currency axes, churn computed, empty charts saying so, a reversed period answered by
the page itself, and no sideways scrolling at 390 px. Saves a screenshot to
``$DUNNING_SCREENSHOTS`` (default: the system's temporary folder).
"""

from __future__ import annotations

import os
import re
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, ViewportSize
from sqlalchemy import insert, text

from dunning import models as m
from dunning.db import get_engine, table
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


# One SMS for one case in ten, a third clicked through to a new card; card-updater calls.
CHANNEL_EXTRAS = [
    """INSERT INTO notifications (dedupe_key, kind, channel, template, case_id, step, status)
       SELECT 'case:' || c.id || ':sms:1', 'dunning', 'sms', 'payment_failed', c.id, 1, 'sent'
       FROM dunning_cases c WHERE c.id % 10 = 3""",
    """INSERT INTO case_events (case_id, at, kind, notification_id)
       SELECT n.case_id, now(), 'card_updated', n.id FROM notifications n
       WHERE n.channel = 'sms' AND n.id % 3 = 0""",
    """INSERT INTO card_updater_requests (case_id, provider, reason, asked_at, result)
       SELECT c.id, 'test', 'before_retry', now(),
              CASE WHEN c.id % 3 = 0 THEN 'new_card' ELSE 'unchanged' END
       FROM dunning_cases c WHERE c.id % 7 = 0""",
]


@pytest.fixture
def seeded(web: WebServer, database_url: str) -> WebServer:
    seed(database_url, 3000, verbose=False)
    with get_engine().begin() as conn:
        for sql in CHANNEL_EXTRAS:
            conn.execute(text(sql))
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
    cookie = next(c for c in context.cookies() if c["name"] == "dunning_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and key not in cookie["value"]

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

    # The card updater and SMS, in the channel table and the chart, as the API has them.
    channels = httpx.get(
        f"{seeded.url}/api/reports/channels", params=PERIOD, headers=bearer(key), timeout=30
    ).json()["rows"]
    updater = next(r for r in channels if r["currency"] == "usd" and r["channel"] == "card_updater")
    sms = next(r for r in channels if r["currency"] == "usd" and r["channel"] == "sms")
    assert updater["calls"] > updater["hits"] > 0 and sms["sent"] > sms["cases"] > 0
    row = page.locator('[data-table=channels] tr[data-currency="usd"][data-channel="sms"]')
    assert row.locator('[data-metric="sent"]').inner_text() == str(sms["sent"])
    assert row.locator('[data-metric="cases"]').inner_text() == str(sms["cases"])
    assert (
        _number(row.locator('[data-metric="amount"]').get_attribute("data-value"))
        == (sms["amount"])
    )
    row = page.locator('[data-table=channels] tr[data-currency="usd"][data-channel="card_updater"]')
    assert row.locator('[data-metric="calls"]').inner_text() == (
        f"{updater['calls']} / {updater['hits']}"
    )
    notes = page.locator('svg[data-chart="recovered-by-channel"] text.note').all_text_contents()
    assert f"{sms['cases']:,} of {sms['sent']:,} sent" in notes
    assert any(n.endswith(f"· {updater['hits']:,}/{updater['calls']:,} hits") for n in notes)
    assert page.locator('svg[data-chart="recovered-by-channel"] rect').count() == 5

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


# --- a new install: the ledger the demo leaves, minutes old ---------------------------------

SCREENSHOTS = Path(os.environ.get("DUNNING_SCREENSHOTS", tempfile.gettempdir()))
PHONE = ViewportSize(width=390, height=844)
AXIS_NUMBER = re.compile(r"^[$]?[0-9][0-9,.]*[kM]?$")


def _demo_ledger(now: datetime) -> None:
    """Three customers who subscribed an hour ago; their renewals failed; one paid with a
    new card seven minutes after the failure, through the first email's link."""
    opened = now - timedelta(minutes=50)
    rows: dict[Any, list[dict[str, Any]]] = {
        m.RetryPolicy: [{"id": 1, "name": "default", "version": 1, "source": "",
                         "created_by": "t"}],
        m.Customer: [{"id": f"cus_{i}", "default_payment_method_id": f"pm_{i}"}
                     for i in (1, 2, 3)],
        m.PaymentMethod: [{"id": f"pm_{i}", "customer_id": f"cus_{i}", "brand": "visa",
                           "last4": f"000{i}", "exp_month": 12, "exp_year": 2031}
                          for i in (1, 2, 3)],
        m.Subscription: [{"id": f"sub_{i}", "customer_id": f"cus_{i}", "status": "active",
                          "plan_name": "Pro", "interval": "month", "interval_count": 1,
                          "amount": 4900, "currency": "usd",
                          "current_period_end": now + timedelta(days=30)}
                         for i in (1, 2, 3)],
        m.Invoice: [{"id": f"in_{i}", "customer_id": f"cus_{i}", "subscription_id": f"sub_{i}",
                     "status": "paid" if i == 1 else "open", "amount_due": 4900,
                     "billing_reason": "subscription_create", "currency": "usd",
                     "processor_created": now - timedelta(hours=1)}
                    for i in (1, 2, 3)],
        m.DunningCase: [{"id": i, "invoice_id": f"in_{i}", "customer_id": f"cus_{i}",
                         "subscription_id": f"sub_{i}", "state": "recovered" if i == 1 else "open",
                         "amount": 4900, "currency": "usd", "policy_id": 1, "policy_version": 1,
                         "opened_at": opened, "decline_class": "insufficient_funds",
                         "closed_at": opened + timedelta(minutes=7) if i == 1 else None,
                         "recovered_amount": 4900 if i == 1 else None,
                         "recovered_by": "customer" if i == 1 else None}
                        for i in (1, 2, 3)],
        m.ChargeAttempt: [{"attempt_key": f"ch_{i}", "charge_id": f"ch_{i}",
                           "invoice_id": f"in_{i}", "attempted_at": opened, "outcome": "failed",
                           "decline_code": "insufficient_funds", "failure_code": "card_declined",
                           "card_brand": "visa", "triggered_by": "processor", "amount": 4900,
                           "currency": "usd"}
                          for i in (1, 2, 3)],
        m.Notification: [{"id": i, "dedupe_key": f"case:{i}:email:0", "kind": "dunning",
                          "template": "payment_failed", "case_id": i, "step": 0,
                          "status": "sent"}
                         for i in (1, 2, 3)],
        m.CaseEvent: [{"case_id": 1, "at": opened + timedelta(minutes=5), "kind": kind,
                       "notification_id": 1} for kind in ("link_opened", "card_updated")],
    }  # fmt: skip
    with get_engine().begin() as conn:
        for model, values in rows.items():
            conn.execute(insert(table(model)), values)


def _axis_labels(page: Page, chart: str) -> list[str]:
    """The y axis of a chart: right-aligned labels left of the plot."""
    return page.eval_on_selector_all(
        f'svg[data-chart="{chart}"] text.axis[text-anchor="end"]',
        "nodes => nodes.filter(n => !n.getAttribute('transform')).map(n => n.textContent)",
    )


def test_a_new_install_sees_its_first_cases_on_a_phone(web: WebServer, browser: Browser) -> None:
    _demo_ledger(datetime.now(UTC))
    key = make_key("finance", "phone")
    context = browser.new_context(
        viewport=PHONE, extra_http_headers={"Authorization": f"Bearer {key}"}
    )
    page = context.new_page()
    problems = _watch(page)

    response = page.goto(f"{web.url}/dashboard")
    assert response is not None and response.status == 200
    assert "Last 30 days up to now" in page.inner_text("[data-testid=period]")
    row = page.locator('[data-table=recovery] tr[data-currency="usd"]')
    assert row.locator('[data-metric="cases_opened"]').inner_text() == "3"
    # Seven minutes, not "0.0 d".
    assert page.inner_text('[data-card="median_hours_to_recovery"]') == "7 min"
    # Three subscriptions live in the period, none churned: 0 %, not "-".
    assert page.inner_text('[data-card="involuntary_churn_rate"]') == "0.0%"
    # The funnel names its step, in the table and in the chart.
    assert page.locator("[data-table=funnel] td[data-step]").first.inner_text() == (
        "Email 1: payment failed"
    )
    assert page.locator('svg[data-chart="email-funnel"] text.step').first.text_content() == (
        "Email 1: payment failed"
    )
    # Count axes in whole numbers, each once; money axes in dollars.
    for chart in ("failure-reasons", "days-to-recovery"):
        labels = _axis_labels(page, chart)
        assert labels and all(re.fullmatch(r"[0-9]+", v) for v in labels), (chart, labels)
        assert [int(v) for v in labels] == sorted({int(v) for v in labels}), labels
    money = _axis_labels(page, "amounts-by-month")
    assert money and all(v.startswith("$") and AXIS_NUMBER.match(v) for v in money), money
    # Nothing to draw is said in words, not with axes reading 0 0 0 0 0.
    ab = page.locator('[data-chart="ab-comparison"]')
    assert ab.get_attribute("data-empty") == "true" or ab.locator("circle").count() > 0
    # A phone never scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=str(SCREENSHOTS / "dashboard-390.png"), full_page=True)

    # A period with nothing in it: every chart says so, and no axis is drawn.
    page.goto(f"{web.url}/dashboard?from=2020-01-01&to=2020-02-01")
    for chart in CHARTS:
        shown = page.locator(f'[data-chart="{chart}"]')
        assert shown.get_attribute("data-empty") == "true", chart
        assert shown.inner_text().splitlines()[-1] == "no data in this period"
        assert shown.locator("svg, text").count() == 0  # no axis, no label
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    # A reversed period: the page, saying what was wrong, not an error in JSON.
    response = page.goto(f"{web.url}/dashboard?from=2026-11-10&to=2026-11-01")
    assert response is not None and response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    problem = page.inner_text("[data-testid=period-problem]")
    assert "must be after" in problem and "last 30 days" in problem
    assert "Last 30 days up to now" in page.inner_text("[data-testid=period]")
    page.goto(f"{web.url}/dashboard?from=yesterday")
    assert "must be a date like 2026-10-01" in page.inner_text("[data-testid=period-problem]")
    assert problems == []
    context.close()
