"""The templates page: every template in every locale, and one in full with sample data or
with a real case's data (as the workers' renderer would write it to that customer)."""

from __future__ import annotations

import html
import re
import time

import httpx

from dunning.events.service import handle_event
from dunning.notify.render import LOCALES, TEMPLATES
from tests.console.helpers import login
from tests.support.admin import make_key
from tests.support.cases import case_row, fail_invoice, store
from tests.support.ledger import all_handled, wait_until
from tests.support.servers import WebServer
from tests.support.stripe_events import event, fixture


def _open_case_of_a_spanish_customer() -> int:
    customer = fixture(
        "customer",
        id="cus_ops",
        email="olga@example.com",
        preferred_locales=["es"],
        metadata={"time_zone": "Europe/Madrid"},
    )
    customer["name"] = "Olga Ops"
    for pk in store(event("customer.created", customer, created=int(time.time()) - 60)):
        handle_event(pk)
    fail_invoice("in_templates", created=int(time.time()))
    wait_until(all_handled, what="events applied")
    return int(case_row("in_templates")["id"])


def test_every_template_in_every_locale_with_sample_or_case_data(web: WebServer) -> None:
    case_id = _open_case_of_a_spanish_customer()
    with httpx.Client(base_url=web.url, timeout=30) as browser:
        assert login(browser, make_key("finance", "finance-templates")).status_code == 303
        page = browser.get("/console/templates")
        assert page.status_code == 200
        table = page.text.split('data-table="templates"', 1)[1]
        assert len(re.findall(r"<td><a href=\"/console/templates\?template=", table)) == len(
            TEMPLATES
        ) * len(LOCALES)
        assert "Jordan Lee" in html.unescape(page.text)  # the sample customer

        spanish = browser.get(
            "/console/templates", params={"template": "payment_reminder", "locale": "es"}
        )
        assert spanish.status_code == 200
        subject = re.search(r'data-testid="subject">([^<]+)<', spanish.text)
        assert subject and "pago" in html.unescape(subject.group(1)).lower()

        real = browser.get(
            "/console/templates", params={"template": "final_notice", "case": str(case_id)}
        )
        text = html.unescape(real.text)
        assert real.status_code == 200 and f"case #{case_id}" in text
        assert "Olga Ops" in text and "Jordan Lee" not in text.split("Every template")[0]
        assert "10,00" in text  # her amount, in her (Spanish) number format
        assert "/pay/preview-only" in text  # a placeholder, never a real signed link

        missing = browser.get("/console/templates", params={"case": "999999"})
        assert "There is no case 999999" in html.unescape(missing.text)
        assert browser.get("/console/templates", params={"template": "nope"}).status_code == 404
