"""Events arrive late, twice and out of order; the ledger ends the same (docs/architecture.md)."""

from __future__ import annotations

import logging
import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.support.cases import store
from tests.support.env import WEBHOOK_SECRET
from tests.support.ledger import all_handled, rows, wait_until
from tests.support.servers import WebServer
from tests.support.stripe_events import event, fixture, post

T0 = 1_780_000_000  # event times, one minute apart per step


def _invoice(
    inv_id: str,
    cus: str,
    sub: str,
    status: str,
    attempts: int,
    t: int,
    charge: str | None = None,
    amount: int = 2500,
    currency: str = "usd",
) -> dict[str, Any]:
    obj = fixture(
        "invoice",
        id=inv_id,
        customer=cus,
        status=status,
        attempt_count=attempts,
        amount_due=amount,
        currency=currency,
        amount_paid=amount if status == "paid" else 0,
        next_payment_attempt=None,
    )
    obj["parent"] = {
        "type": "subscription_details",
        "subscription_details": {"subscription": sub, "metadata": None},
    }
    obj["status_transitions"] = {
        "finalized_at": T0,
        "paid_at": t if status == "paid" else None,
        "voided_at": t if status == "void" else None,
        "marked_uncollectible_at": t if status == "uncollectible" else None,
    }
    if charge:
        obj["charge"] = charge  # the 2017 shape names the charge
    return obj


def _charge(ch_id: str, inv_id: str | None, cus: str, t: int, reason: str) -> dict[str, Any]:
    obj = fixture(
        "charge",
        id=ch_id,
        customer=cus,
        status="failed",
        paid=False,
        created=t,
        amount=2500,
        failure_code="card_declined",
    )
    obj["outcome"] = {
        **obj["outcome"],
        "type": "issuer_declined",
        "reason": reason,
        "network_decline_code": "51",
        "advice_code": "try_again_later",
    }
    if inv_id:
        obj["invoice"] = inv_id
    return obj


def scenario() -> list[dict[str, Any]]:
    """About 100 distinct events covering every way a case can end."""
    events: list[dict[str, Any]] = []
    endings = ["paid", "void", "uncollectible", "open", "canceled", "uncollectible_then_paid"]
    for n in range(12):
        cus, sub, inv = f"cus_{n}", f"sub_{n}", f"in_{n}"
        ending = endings[n % len(endings)]
        t = T0 + n * 10_000
        customer = fixture("customer", id=cus, email=f"old{n}@example.com")
        events.append(event("customer.created", customer, created=t, event_id=f"e{n}.c1"))
        events.append(
            event(
                "customer.updated",
                {**customer, "email": f"c{n}@example.com"},
                created=t + 60,
                event_id=f"e{n}.c2",
            )
        )
        pm = fixture("payment_method", id=f"pm_{n}", customer=cus)
        events.append(event("payment_method.attached", pm, created=t + 60, event_id=f"e{n}.pm"))
        # The network refreshes the card; a later ordinary update must not drop that fact.
        renewed = {**pm, "card": {**pm["card"], "exp_year": 2031}}
        events.append(
            event(
                "payment_method.automatically_updated",
                renewed,
                created=t + 300,
                event_id=f"e{n}.pm2",
            )
        )
        events.append(
            event("payment_method.updated", renewed, created=t + 360, event_id=f"e{n}.pm3")
        )
        for k, amount in enumerate((4000, 4100)):  # the newest upcoming invoice wins
            upcoming = _invoice(inv, cus, sub, "draft", 0, t, amount=amount)
            upcoming.pop("id")
            upcoming["next_payment_attempt"] = t + 30 * 86_400 + k
            events.append(
                event("invoice.upcoming", upcoming, created=t + 400 + k, event_id=f"e{n}.up{k}")
            )
        subscription = fixture("subscription", id=sub, customer=cus, status="active")
        events.append(
            event(
                "customer.subscription.created", subscription, created=t + 120, event_id=f"e{n}.s1"
            )
        )
        events.append(
            event(
                "customer.subscription.updated",
                {**subscription, "status": "past_due"},
                created=t + 240,
                event_id=f"e{n}.s2",
            )
        )
        old_shape = n % 2 == 0
        for attempt in (1, 2):
            at = t + 180 * attempt
            ch = f"ch_{n}_{attempt}"
            events.append(
                event(
                    "invoice.payment_failed",
                    _invoice(inv, cus, sub, "open", attempt, at, charge=ch if old_shape else None),
                    created=at,
                    event_id=f"e{n}.f{attempt}",
                )
            )
            events.append(
                event(
                    "charge.failed",
                    _charge(ch, inv if old_shape else None, cus, at, "insufficient_funds"),
                    created=at,
                    event_id=f"e{n}.ch{attempt}",
                )
            )
        end = t + 600
        if ending in ("paid", "uncollectible_then_paid"):
            if ending == "uncollectible_then_paid":
                events.append(
                    event(
                        "invoice.marked_uncollectible",
                        _invoice(inv, cus, sub, "uncollectible", 2, end - 60),
                        created=end - 60,
                        event_id=f"e{n}.u",
                    )
                )
            events.append(
                event(
                    "invoice.paid",
                    _invoice(inv, cus, sub, "paid", 2, end),
                    created=end,
                    event_id=f"e{n}.p",
                )
            )
        elif ending == "void":
            events.append(
                event(
                    "invoice.voided",
                    _invoice(inv, cus, sub, "void", 2, end),
                    created=end,
                    event_id=f"e{n}.v",
                )
            )
        elif ending == "uncollectible":
            events.append(
                event(
                    "invoice.marked_uncollectible",
                    _invoice(inv, cus, sub, "uncollectible", 2, end),
                    created=end,
                    event_id=f"e{n}.u",
                )
            )
        elif ending == "canceled":
            events.append(
                event(
                    "customer.subscription.deleted",
                    {**subscription, "status": "canceled", "canceled_at": end},
                    created=end,
                    event_id=f"e{n}.s3",
                )
            )
    return events


# Every column of every ledger table and of the cases, but our own surrogate ids and
# row timestamps: the facts must not depend on the order events arrived in.
_TABLES = {
    "customers": "id",
    "subscriptions": "id",
    "payment_methods": "id",
    "invoices": "id",
    "charge_attempts": "attempt_key",
    "dunning_cases": "invoice_id",
}
# When we wrote the row, and the policy's surrogate id (its name and version are compared).
_OURS = {"updated_at", "created_at", "recorded_at", "policy_id"}


def _ledger_queries() -> dict[str, str]:
    from dunning.models import Base

    queries = {}
    for name, key in _TABLES.items():
        table = Base.metadata.tables[name]
        columns = [
            c.name
            for c in table.columns
            if c.name not in _OURS and not (c.name == "id" and key != "id")
        ]
        queries[name] = f"SELECT {', '.join(columns)} FROM {name} ORDER BY {key}"
    return queries


def _ledger() -> dict[str, list[dict[str, Any]]]:
    ledger = {name: rows(sql) for name, sql in _ledger_queries().items()}
    # What an open case will do next: its latest decision.
    ledger["latest_decisions"] = rows(
        "SELECT DISTINCT ON (c.invoice_id) c.invoice_id, d.kind, d.decline_class,"
        " d.attempt_number FROM case_decisions d JOIN dunning_cases c ON c.id = d.case_id"
        " WHERE c.state = 'open' ORDER BY c.invoice_id, d.id DESC"
    )
    return ledger


def _truncate() -> None:
    from dunning.db import get_engine
    from dunning.models import Base

    with get_engine().begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(t.name for t in Base.metadata.sorted_tables)))


def _deliver(url: str, events: list[dict[str, Any]], concurrency: int = 1) -> None:
    with httpx.Client(timeout=10) as client, ThreadPoolExecutor(concurrency) as pool:
        answers = list(
            pool.map(lambda e: post(url, e, secret=WEBHOOK_SECRET, client=client), events)
        )
    assert {a.status_code for a in answers} == {200}
    wait_until(all_handled, timeout=60, what="all events handled")


def test_paid_before_failed_leaves_the_case_closed_as_recovered(
    web: WebServer, celery_worker: object
) -> None:
    failed = event(
        "invoice.payment_failed",
        _invoice("in_p", "cus_p", "sub_p", "open", 1, T0),
        created=T0,
        event_id="e.failed",
    )
    paid = event(
        "invoice.paid",
        _invoice("in_p", "cus_p", "sub_p", "paid", 1, T0 + 3600),
        created=T0 + 3600,
        event_id="e.paid",
    )
    _deliver(web.url, [paid])
    _deliver(web.url, [failed])
    [case] = rows(
        "SELECT state, recovered_by, recovered_amount, opened_at, closed_at FROM dunning_cases"
    )
    assert case["state"] == "recovered"
    assert case["recovered_by"] == "processor"
    assert case["recovered_amount"] == 2500
    assert case["closed_at"] > case["opened_at"]
    [invoice] = rows("SELECT status, attempt_count FROM invoices")
    assert invoice == {"status": "paid", "attempt_count": 1}


def test_shuffled_duplicated_delivery_gives_the_same_ledger(
    web: WebServer, celery_worker: object, clean_db: None
) -> None:
    events = scenario()
    _deliver(web.url, events)
    ordered = _ledger()
    states = sorted(c["state"] for c in ordered["dunning_cases"])
    assert states == sorted(
        ["recovered"] * 4 + ["voided"] * 2 + ["uncollectible"] * 2 + ["open"] * 2 + ["canceled"] * 2
    )
    assert len(ordered["charge_attempts"]) == 12 * 2 + 6 * 2  # new-shape charges: not linked
    assert all(pm["updated_by_network_at"] for pm in ordered["payment_methods"])
    assert {s["upcoming_amount"] for s in ordered["subscriptions"]} == {4100}

    _truncate()
    rng = random.Random(20261122)
    noisy = events * 3  # each event three times, in any order
    rng.shuffle(noisy)
    _deliver(web.url, noisy, concurrency=8)
    shuffled = _ledger()
    for name, table in ordered.items():
        assert len(shuffled[name]) == len(table), (name, table, shuffled[name])
        differences = [
            (key, a[key], b[key])
            for a, b in zip(table, shuffled[name], strict=True)
            for key in a
            if a[key] != b[key]
        ]
        assert differences == [], name


def test_one_batch_of_every_kind_applies_without_falling_back(
    clean_db: None, caplog: pytest.LogCaptureFixture
) -> None:
    """The set-based batch path, not its one-by-one fallback, gives the in-order ledger.

    Each event of the scenario is applied on its own, in order; then, on an empty
    database, all of them shuffled in batches (several snapshots of one invoice or
    subscription in one batch included). No batch may roll back, and the ledger,
    cases and plans must be the same.
    """
    from dunning.events.service import TRANSACTION_EVENTS, handle_event, handle_events

    events = scenario()
    assert len(events) > TRANSACTION_EVENTS  # more than one batch
    assert [handle_event(pk) for pk in store(*events)] == ["handled"] * len(events)
    ordered = _ledger()

    _truncate()
    shuffled = list(events)
    random.Random(20261202).shuffle(shuffled)
    with caplog.at_level(logging.INFO, logger="dunning.events.service"):
        assert handle_events(store(*shuffled)) == {"handled": len(events)}
    assert not [r for r in caplog.records if "rolled back" in r.getMessage()]
    batched = _ledger()
    for name, table in ordered.items():
        assert batched[name] == table, name
