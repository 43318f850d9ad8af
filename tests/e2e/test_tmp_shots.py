from datetime import UTC, datetime
from playwright.sync_api import Browser
from tests.e2e.test_dashboard import PHONE, _demo_ledger
from tests.support.admin import make_key
from tests.support.servers import WebServer

def test_shots(web: WebServer, browser: Browser) -> None:
    _demo_ledger(datetime.now(UTC))
    key = make_key("finance", "phone")
    context = browser.new_context(viewport=PHONE, extra_http_headers={"Authorization": f"Bearer {key}"})
    page = context.new_page()
    page.goto(f"{web.url}/dashboard")
    h = page.evaluate("document.documentElement.scrollHeight")
    for i, y in enumerate(range(0, h, 844)):
        page.screenshot(path=f"/tmp/d390-{i}.png", clip={"x": 0, "y": y, "width": 390, "height": min(844, h - y)}, full_page=True)
    page.goto(f"{web.url}/dashboard?from=2026-11-10&to=2026-11-01")
    page.screenshot(path="/tmp/d390-reversed.png")
    page.goto(f"{web.url}/dashboard?from=2020-01-01&to=2020-02-01")
    page.locator('[data-chart="recovery-by-month"]').scroll_into_view_if_needed()
    page.screenshot(path="/tmp/d390-empty.png")
    wide = browser.new_context(viewport={"width": 1360, "height": 900}, extra_http_headers={"Authorization": f"Bearer {key}"})
    p2 = wide.new_page()
    p2.goto(f"{web.url}/dashboard")
    p2.screenshot(path="/tmp/dwide.png", full_page=True)
