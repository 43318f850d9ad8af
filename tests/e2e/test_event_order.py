"""Events arrive late, twice and out of order; the ledger ends the same (docs/architecture.md)."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

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


LEDGER_QUERIES = {
    "customers": "SELECT id, email, deleted, version FROM customers ORDER BY id",
    "subscriptions": "SELECT id, customer_id, status, amount, current_period_end, canceled_at,"
    " version FROM subscriptions ORDER BY id",
    "payment_methods": "SELECT id, customer_id, brand, last4 FROM payment_methods ORDER BY id",
    "invoices": "SELECT id, status, attempt_count, amount_due, amount_paid, paid_at, voided_at,"
    " marked_uncollectible_at, subscription_id, version FROM invoices ORDER BY id",
    "attempts": "SELECT attempt_key, invoice_id, attempt_number, outcome, decline_code,"
    " failure_code, amount, attempted_at FROM charge_attempts ORDER BY attempt_key",
    "cases": "SELECT invoice_id, customer_id, subscription_id, state, amount, opened_at,"
    " closed_at, recovered_amount, recovered_by FROM dunning_cases ORDER BY invoice_id",
}


def _ledger() -> dict[str, list[dict[str, Any]]]:
    return {name: rows(sql) for name, sql in LEDGER_QUERIES.items()}


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
    states = sorted(c["state"] for c in ordered["cases"])
    assert states == sorted(
        ["recovered"] * 4 + ["voided"] * 2 + ["uncollectible"] * 2 + ["open"] * 2 + ["canceled"] * 2
    )
    assert len(ordered["attempts"]) == 12 * 2 + 6 * 2  # new-shape charges are not linked

    from sqlalchemy import text

    from dunning.db import get_engine
    from dunning.models import Base

    with get_engine().begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(t.name for t in Base.metadata.sorted_tables)))
    rng = random.Random(20261122)
    noisy = events + [rng.choice(events) for _ in range(200 - len(events))]
    rng.shuffle(noisy)
    assert len(noisy) == 200
    _deliver(web.url, noisy, concurrency=8)
    assert _ledger() == ordered
