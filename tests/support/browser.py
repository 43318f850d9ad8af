"""Headless Chromium (Debian's, driven by Playwright; never a downloaded browser)."""

from __future__ import annotations

from playwright.sync_api import Browser, ConsoleMessage, Page, ViewportSize

PHONE = ViewportSize(width=375, height=740)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


class Phone:
    """A phone-sized page that records console errors and uncaught exceptions."""

    def __init__(self, browser: Browser) -> None:
        self.context = browser.new_context(viewport=PHONE, locale="en-US")
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} ({message.location.get('url')})")

    def close(self) -> None:
        self.context.close()


def fill_card(page: Page, number: str) -> None:
    """localstripe's Stripe.js renders plain inputs named by their placeholder."""
    fields = {"number": number, "exp_month": "12", "exp_year": "34", "cvc": "123"}
    for name, value in fields.items():
        page.fill(f"#card-element input[placeholder={name}]", value)
    page.fill("#card-element input[placeholder=postal_code]", "10001")
