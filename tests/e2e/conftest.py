"""Browser fixtures for the end-to-end tests of the hosted pages."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from dunning.settings import get_settings
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, Phone
from tests.support.servers import ThrowawayRedis, WebServer


@pytest.fixture(autouse=True)
def _services(services: None) -> None:
    """Every end-to-end test runs against Postgres and Redis, started once per session."""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Phone]:
    device = Phone(browser)
    yield device
    device.close()


@pytest.fixture
def site(
    processor: str,
    clean_db: None,
    redis_server: ThrowawayRedis,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[WebServer]:
    """The web app with Stripe.js from localstripe and links pointing at it."""
    from dunning.app import create_app
    from dunning.links import ratelimit

    monkeypatch.setenv("DUNNING_STRIPE_JS_URL", f"{processor}/js.stripe.com/v3/")
    monkeypatch.setenv("DUNNING_STRIPE_PUBLISHABLE_KEY", "pk_test_links")
    get_settings.cache_clear()
    ratelimit.reset(redis_server.url)
    app = create_app()
    with WebServer(app) as server:
        monkeypatch.setenv("DUNNING_PUBLIC_URL", server.url)
        get_settings.cache_clear()
        app.settings.public_url = server.url
        yield server
    get_settings.cache_clear()
