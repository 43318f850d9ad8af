"""The self-serve update page end to end: Postgres, Redis, a Celery worker, localstripe,
the real web app, and headless Chromium (Debian's, driven by Playwright) at phone size."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from dunning.events.reconcile import reconcile
from dunning.formatting import format_local_date
from dunning.links import tokens
from dunning.links.messages import MESSAGES
from dunning.processors.stripe_adapter import StripeAdapter
from dunning.settings import get_settings
from tests.support import sandbox
from tests.support.browser import PHONE, Phone, fill_card
from tests.support.ledger import all_handled, rows, scalar, wait_until
from tests.support.servers import WebServer

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "update-page.png"
README = Path(__file__).resolve().parents[2] / "README.md"
NOTIFICATION_ID = 7001


def _open_case(base: str) -> tuple[str, str, dict[str, Any]]:
    """A subscription whose first charge failed, found by the reconciler; its case row."""
    sdk = sandbox.client(base)
    customer_id, sub_id = sandbox.subscribe(sdk, sandbox.FAILING_CARD)
    reconcile(StripeAdapter(sandbox.API_KEY, base))
    wait_until(all_handled, what="reconciled events applied")
    [case] = rows("SELECT id, state FROM dunning_cases WHERE customer_id = :c", c=customer_id)
    assert case["state"] == "open"
    return customer_id, sub_id, case


def _email(customer_id: str) -> str:
    return str(scalar("SELECT email FROM customers WHERE id = :c", c=customer_id))


def _assert_no_account_data(page: Page, email: str) -> None:
    text = page.content()
    for leak in ("49.00", "$", email, "0341", "4242", "Visa", "cus_", "seti_", "in_"):
        assert leak not in text, f"{leak!r} on an error page"


def test_a_customer_updates_the_card_and_the_invoice_is_paid(
    site: WebServer, processor: str, celery_worker: object, phone: Phone
) -> None:
    sdk = sandbox.client(processor)
    customer_id, _, case = _open_case(processor)
    link = tokens.make_link(case["id"], customer_id, NOTIFICATION_ID)
    assert link.startswith(f"{site.url}/pay/")

    page = phone.page
    response = page.goto(link)
    assert response is not None and response.status == 200
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "script-src" in response.headers["content-security-policy"]
    assert page.inner_text("[data-testid=amount]") == "$49.00"
    assert "Visa ending in 0341" in page.inner_text("[data-testid=card-on-file]")
    assert "Expires 12/31" in page.inner_text("[data-testid=card-on-file]")
    assert "per month" in page.inner_text("[data-testid=plan]")
    page.wait_for_selector("#card-element input[placeholder=number]")
    fill_card(page, sandbox.GOOD_CARD)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    with page.expect_navigation():
        page.click("#pay-button")
    page.wait_for_selector("[data-testid=message-title]")
    assert page.inner_text("[data-testid=message-title]") == "Thank you, you're all set"
    # Which card paid, and when the subscription renews, in the customer's zone.
    assert page.inner_text("[data-testid=paid-card]") == "Paid with Visa ending in 4242."
    [sub] = rows(
        "SELECT s.current_period_end, c.time_zone FROM subscriptions s"
        " JOIN customers c ON c.id = s.customer_id WHERE s.customer_id = :c",
        c=customer_id,
    )
    renews = format_local_date(sub["current_period_end"], sub["time_zone"] or "UTC", "en")
    assert page.inner_text("[data-testid=next-renewal]") == f"Your next renewal is on {renews}."
    assert phone.errors == []

    [invoice] = sdk.v1.invoices.list(params={"customer": customer_id}).data
    assert invoice.status == "paid"
    [closed] = rows(
        "SELECT state, recovered_by, recovered_amount FROM dunning_cases WHERE id = :c",
        c=case["id"],
    )
    assert closed == {"state": "recovered", "recovered_by": "customer", "recovered_amount": 4900}
    events = rows(
        "SELECT kind, notification_id, details FROM case_events WHERE case_id = :c ORDER BY id",
        c=case["id"],
    )
    assert [e["kind"] for e in events] == ["link_opened", "card_updated", "payment_attempted"]
    assert {e["notification_id"] for e in events} == {NOTIFICATION_ID}
    assert events[1]["details"]["last4"] == "4242"
    assert events[2]["details"]["outcome"] == "paid"
    customer = sdk.v1.customers.retrieve(customer_id)
    new_pm = customer.invoice_settings.default_payment_method  # type: ignore[union-attr]
    assert scalar("SELECT last4 FROM payment_methods WHERE id = :p", p=new_pm) == "4242"
    assert (
        scalar("SELECT default_payment_method_id FROM customers WHERE id = :c", c=customer_id)
        == new_pm
    )
    [paid] = rows(
        "SELECT triggered_by, payment_method_id FROM charge_attempts"
        " WHERE customer_id = :c AND outcome = 'succeeded'",
        c=customer_id,
    )
    assert paid == {"triggered_by": "customer", "payment_method_id": new_pm}
    assert (
        scalar(
            "SELECT count(*) FROM scheduled_actions WHERE case_id = :c AND status = 'pending'",
            c=case["id"],
        )
        == 0
    )

    # The same link once paid: a thank-you that shows nothing of the account.
    page.goto(link)
    assert page.inner_text("[data-testid=message-title]") == "Thank you, you're all set"
    _assert_no_account_data(page, _email(customer_id))
    assert phone.errors == []


def test_a_declined_new_card_says_so_and_the_case_stays_open(
    site: WebServer, processor: str, celery_worker: object, phone: Phone
) -> None:
    customer_id, _, case = _open_case(processor)
    page = phone.page
    page.goto(tokens.make_link(case["id"], customer_id, None))
    page.wait_for_selector("#card-element input[placeholder=number]")
    fill_card(page, sandbox.FAILING_CARD)  # saves, then the charge is declined
    with page.expect_navigation():
        page.click("#pay-button")
    assert "declined" in page.inner_text("[data-testid=notice]")
    assert page.inner_text("[data-testid=amount]") == "$49.00"
    assert scalar("SELECT state FROM dunning_cases WHERE id = :c", c=case["id"]) == "open"
    attempts = rows(
        "SELECT outcome, triggered_by FROM charge_attempts WHERE customer_id = :c"
        " ORDER BY attempted_at",
        c=customer_id,
    )
    assert attempts[-1] == {"outcome": "failed", "triggered_by": "customer"}
    assert phone.errors == []


def test_tampered_expired_and_foreign_links_show_a_clear_page_with_no_account_data(
    site: WebServer, processor: str, celery_worker: object, phone: Phone
) -> None:
    customer_id, _, case = _open_case(processor)
    email = _email(customer_id)
    token = tokens.make_link(case["id"], customer_id, None).rsplit("/", 1)[1]
    page = phone.page

    tampered = token[:12] + ("A" if token[12] != "A" else "B") + token[13:]
    response = page.goto(f"{site.url}/pay/{tampered}")
    assert response is not None and response.status == 404
    assert page.inner_text("[data-testid=message-title]") == "This link isn't valid"
    _assert_no_account_data(page, email)

    secret = tokens.link_secret(get_settings())
    expired = tokens.make_token(
        case["id"],
        customer_id,
        None,
        secret=secret,
        expires_at=datetime.now(UTC) - timedelta(minutes=1),
    )
    response = page.goto(f"{site.url}/pay/{expired}")
    assert response is not None and response.status == 410
    assert page.inner_text("[data-testid=message-title]") == "This link has expired"
    _assert_no_account_data(page, email)

    foreign = tokens.make_token(
        case["id"],
        "cus_someone_else",
        None,
        secret=secret,
        expires_at=datetime.now(UTC) + timedelta(days=1),
    )
    response = page.goto(f"{site.url}/pay/{foreign}")
    assert response is not None and response.status == 404
    _assert_no_account_data(page, email)
    # Chromium logs each 4xx document it loads; nothing else may have gone wrong.
    assert len(phone.errors) == 3
    assert all(
        e.startswith("Failed to load resource: the server responded with a status of 4")
        for e in phone.errors
    )
    assert scalar("SELECT count(*) FROM case_events WHERE case_id = :c", c=case["id"]) == 0


def _readme_card_number() -> str:
    """The card number the README's demo walk-through tells a person to type."""
    text = " ".join(README.read_text(encoding="utf-8").split())
    found = re.search(r"on the update page type the test card number `([0-9 ]+)`", text)
    assert found, "the README's demo no longer says which card number to type"
    return found.group(1)


def _type_card(page: Page, number: str) -> None:
    """Type as a person does, each part into its field: the sandbox's fields also move the
    cursor on by themselves, after 16 characters of number and after the month, so
    whatever does not fit the number field lands in the fields after it."""
    for field, value in (
        ("number", number),
        ("exp_month", "12"),
        ("exp_year", "34"),
        ("cvc", "123"),
        ("postal_code", "10001"),
    ):
        page.click(f"#card-element input[placeholder={field}]")
        page.keyboard.press("End")
        page.keyboard.type(value)


def test_the_readme_card_works_and_spaces_get_a_message_that_says_what_to_do(
    site: WebServer, processor: str, celery_worker: object, phone: Phone
) -> None:
    customer_id, _, case = _open_case(processor)
    page = phone.page
    link = tokens.make_link(case["id"], customer_id, None)
    page.goto(link)
    page.wait_for_selector("#card-element input[placeholder=number]")

    # The number as printed on a card, with spaces: the sandbox refuses it with a bare
    # "Bad request"; the page says what went wrong and what to do, in its own words.
    _type_card(page, "4242 4242 4242 4242")
    page.click("#pay-button")
    errors = page.locator("#card-errors")
    errors.wait_for(state="visible")
    # expect() polls from Playwright's side: a polled string predicate is an eval, which
    # the page's Content-Security-Policy refuses whenever the text is not there at once.
    expect(errors).to_have_text(MESSAGES["en"]["card_invalid"])
    assert "Bad request" not in page.inner_text("body")
    assert "without spaces" in errors.inner_text() and "Nothing was charged" in errors.inner_text()
    assert page.is_enabled("#pay-button")
    assert scalar("SELECT state FROM dunning_cases WHERE id = :c", c=case["id"]) == "open"

    # Exactly what the README says to type pays the invoice.
    number = _readme_card_number()
    assert " " not in number
    page.goto(link)
    page.wait_for_selector("#card-element input[placeholder=number]")
    _type_card(page, number)
    with page.expect_navigation():
        page.click("#pay-button")
    page.wait_for_selector("[data-testid=message-title]")
    assert page.inner_text("[data-testid=message-title]") == "Thank you, you're all set"
    assert scalar("SELECT state FROM dunning_cases WHERE id = :c", c=case["id"]) == "recovered"
