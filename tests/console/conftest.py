"""The console's tests: pure ones, HTTP ones against the web app (Postgres, Redis), and
browser ones in headless Chromium."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from dunning.console import throttle
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.servers import ThrowawayRedis


@pytest.fixture(autouse=True)
def _no_failed_logins(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test against the web app starts with no failed login counted (all of them log
    in from 127.0.0.1); the pure tests here start no server."""
    if "web" not in request.fixturenames:
        yield
        return
    redis: ThrowawayRedis = request.getfixturevalue("redis_server")
    throttle.reset(redis.url)
    yield
    throttle.reset(redis.url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
