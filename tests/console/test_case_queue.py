"""The case queue over HTTP: search by email, name, case number or any Stripe id; every
filter, the counts per state, sort and paging, on a ledger written for the purpose."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import insert

from dunning.cases.models import DunningCase
from dunning.console import case_search
from dunning.db import session_scope
from dunning.events.models import ProcessorEvent
from dunning.ledger.models import ChargeAttempt, Customer
from tests.console.helpers import login
from tests.support.admin import make_key
from tests.support.servers import WebServer


def _at(day: int, month: int = 3) -> datetime:
    return datetime(2026, month, day, 12, tzinfo=UTC)


CUSTOMERS = [
    {"id": "cus_g", "email": "grace@example.com", "name": "Grace Hopper"},
    {"id": "cus_a", "email": "ada@example.com", "name": "Ada Lovelace"},
    {"id": "cus_w", "email": "wei@example.com", "name": "Li Wei"},
]
CASES = [  # id: customer, state, paused, amount, currency, class, opened
    (1, "cus_g", "open", False, 4900, "usd", "insufficient_funds", _at(1)),
    (2, "cus_g", "recovered", False, 9900, "usd", "unknown", _at(5)),
    (3, "cus_a", "open", True, 500, "jpy", "hard", _at(10)),
    (4, "cus_w", "canceled", False, 12000, "eur", "temporary", _at(1, 2)),
]


@pytest.fixture
def queue(web: WebServer) -> Iterator[httpx.Client]:
    with session_scope() as session:
        session.execute(insert(Customer), CUSTOMERS)
        session.execute(
            insert(DunningCase),
            [
                {
                    "id": i,
                    "invoice_id": f"in_{i}",
                    "customer_id": customer,
                    "subscription_id": f"sub_{i}",
                    "state": state,
                    "paused": paused,
                    "amount": amount,
                    "currency": currency,
                    "decline_class": cls,
                    "opened_at": opened,
                    "policy_id": 7 if i == 1 else None,
                }
                for i, customer, state, paused, amount, currency, cls, opened in CASES
            ],
        )
        session.execute(
            insert(ChargeAttempt),
            [
                {
                    "attempt_key": "ch_abc",
                    "charge_id": "ch_abc",
                    "payment_intent_id": "pi_abc",
                    "invoice_id": "in_3",
                    "attempted_at": _at(10),
                    "outcome": "failed",
                }
            ],
        )
        session.execute(
            insert(ProcessorEvent),
            [
                {
                    "processor": "stripe",
                    "event_id": "evt_x",
                    "type": "invoice.payment_failed",
                    "object_id": "in_4",
                    "body": "{}",
                    "headers": {},
                }
            ],
        )
    with httpx.Client(base_url=web.url, timeout=30) as client:
        assert login(client, make_key("ops", "ops-queue")).status_code == 303
        yield client


def _ids(client: httpx.Client, **params: str) -> list[int]:
    page = client.get("/console/cases", params=params)
    assert page.status_code == 200, page.text
    return [int(n) for n in re.findall(r'<tr data-case="(\d+)"', page.text)]


def test_search_finds_customers_by_email_name_number_and_any_stripe_id(
    queue: httpx.Client,
) -> None:
    assert _ids(queue, q="grace") == [2, 1]  # part of an email, newest first
    assert _ids(queue, q="GRACE HOPPER") == [2, 1]
    assert _ids(queue, q="lovelace") == [3]
    assert _ids(queue, q="cus_w") == [4]
    assert _ids(queue, q="in_2") == [2]
    assert _ids(queue, q="sub_1") == [1]
    assert _ids(queue, q="#3") == [3]
    assert _ids(queue, q="ch_abc") == [3]
    assert _ids(queue, q="pi_abc") == [3]
    assert _ids(queue, q="evt_x") == [4]
    assert _ids(queue, q="100%_") == []  # LIKE wildcards are text


def test_filters_counts_sort_and_paging(
    queue: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _ids(queue) == [3, 2, 1, 4]
    assert _ids(queue, state="open") == [3, 1]
    assert _ids(queue, paused="yes") == [3]
    assert _ids(queue, paused="no", state="open") == [1]
    assert _ids(queue, decline_class="hard") == [3]
    assert _ids(queue, policy="7") == [1]
    assert _ids(queue, **{"from": "2026-03-05", "to": "2026-03-10"}) == [3, 2]  # both days in
    assert _ids(queue, min="100") == [3, 4]  # ¥500 and €120, in their own units
    assert _ids(queue, max="60") == [1]
    assert _ids(queue, sort="oldest") == [4, 1, 2, 3]
    assert _ids(queue, sort="amount_desc") == [4, 2, 1, 3]

    page = queue.get("/console/cases", params={"q": "grace"})
    counts = dict(re.findall(r'data-state="(\w+)"[^>]*>\w+ <b>(\d+)</b>', page.text))
    assert counts == {
        "open": "1",
        "recovered": "1",
        "voided": "0",
        "uncollectible": "0",
        "canceled": "0",
        "exhausted": "0",
        "paused": "0",
    }
    wrong = queue.get("/console/cases", params={"from": "yesterday", "state": "lost"})
    assert wrong.status_code == 200
    assert "Opened from must be a date" in wrong.text and "state &#39;lost&#39;" in wrong.text

    monkeypatch.setattr(case_search, "PAGE_SIZE", 3)
    assert _ids(queue) == [3, 2, 1]
    assert _ids(queue, page="2") == [4]
    assert _ids(queue, page="99") == [4]  # past the end: the last page
    assert "page 2 of 2" in queue.get("/console/cases", params={"page": "2"}).text
