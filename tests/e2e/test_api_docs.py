"""``/docs`` and ``/redoc`` with no internet: the real web app and headless Chromium
(Debian's, driven by Playwright) with every request that leaves the machine refused.

Swagger UI and ReDoc come from an installed package (fastapi-offline) and are served by
the app itself, so a locked-down install still shows its API. Saves a screenshot to
``$DUNNING_SCREENSHOTS`` (default: the system's temporary folder).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, Page, Route, ViewportSize

from tests.support.servers import WebServer

SCREENSHOTS = Path(os.environ.get("DUNNING_SCREENSHOTS", tempfile.gettempdir()))


def _offline(page: Page) -> list[str]:
    """Abort every request not addressed to the loopback server; return what was tried."""
    refused: list[str] = []

    def handle(route: Route) -> None:
        url = route.request.url
        if urlsplit(url).hostname == "127.0.0.1" or url.startswith("data:"):
            route.continue_()
        else:
            refused.append(url)
            route.abort("internetdisconnected")

    page.route("**/*", handle)
    return refused


def test_swagger_ui_shows_the_operations_without_internet(web: WebServer, browser: Browser) -> None:
    context = browser.new_context(viewport=ViewportSize(width=1280, height=900))
    page = context.new_page()
    refused = _offline(page)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    response = page.goto(f"{web.url}/docs")
    assert response is not None and response.status == 200
    operation = page.locator(".opblock-summary-path", has_text="/api/policies/preview")
    operation.first.wait_for(state="visible", timeout=20_000)
    assert page.get_by_text("Dunning service").first.is_visible()
    page.screenshot(path=str(SCREENSHOTS / "docs-offline.png"), full_page=False)

    assert refused == [], "the docs page asked the internet for something"
    assert errors == []
    context.close()


def test_redoc_renders_without_internet(web: WebServer, browser: Browser) -> None:
    context = browser.new_context(viewport=ViewportSize(width=1280, height=900))
    page = context.new_page()
    refused = _offline(page)

    response = page.goto(f"{web.url}/redoc")
    assert response is not None and response.status == 200
    page.get_by_text("/api/policies/preview").first.wait_for(state="attached", timeout=20_000)
    # Only ReDoc's "API docs by Redocly" badge image is not in the package.
    assert [u for u in refused if not u.startswith("https://cdn.redoc.ly/")] == []
    context.close()
