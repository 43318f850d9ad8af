"""Logging in to the console as a browser would, from httpx or Playwright."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from playwright.sync_api import ConsoleMessage, Page

DOCS = Path(__file__).resolve().parents[2] / "docs"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def login(client: httpx.Client, key: str, next_url: str = "/console") -> httpx.Response:
    """Fetch the login form (its anonymous session and token), then post the key."""
    form = client.get("/console/login", params={"next": next_url})
    assert form.status_code == 200, form.text
    return client.post(
        "/console/login", data={"key": key, "csrf": csrf_of(form.text), "next": next_url}
    )


def browser_login(page: Page, base: str, key: str, target: str = "/console/cases") -> None:
    """Open ``target``, land on the login form, log in, and come back to ``target``."""
    page.goto(f"{base}{target}")
    assert "/console/login" in page.url
    page.fill("#key", key)
    page.click("form.login button[type=submit]")
    page.wait_for_url(f"{base}{target}*")


def watch(page: Page) -> list[str]:
    """Console errors, page errors and failed requests of ``page``, as they happen."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            problems.append(f"console {message.type}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    return problems
