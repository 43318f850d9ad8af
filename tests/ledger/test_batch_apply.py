"""The batched apply path on the real database: a batch is one transaction, a failing
event is recorded with its traceback while its neighbours are applied, new ledger
columns follow the version rules, and a current-API charge finds its invoice through
the invoice's payment whichever event came first."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import text

from dunning.db import get_engine
from dunning.events.service import handle_event, handle_events
from dunning.models import Base
from tests.support.cases import store
from tests.support.ledger import rows
from tests.support.stripe_events import event, fixture

T = int(time.time()) - 3600


def _failed_invoice(n: int) -> dict[str, Any]:
    return fixture(
        "invoice",
        id=f"in_batch_{n}",
        customer=f"cus_batch_{n}",
        status="open",
        attempt_count=1,
        amount_due=4900,
        charge=None,
        parent={"subscription_details": {"subscription": f"sub_batch_{n}"}},
    )


def test_a_failing_event_is_recorded_and_its_neighbours_applied(clean_db: None) -> None:
    good = [event("invoice.payment_failed", _failed_invoice(n), created=T) for n in range(5)]
    bad = event("invoice.payment_failed", {"object": "invoice"}, created=T, event_id="evt_bad")
    pks = store(*good[:2], bad, *good[2:])

    assert handle_events(pks) == {"handled": 5, "failed": 1}

    events = {r["event_id"]: r for r in rows("SELECT * FROM processor_events")}
    assert events["evt_bad"]["status"] == "failed"
    assert events["evt_bad"]["handled_at"] is None
    assert "KeyError" in events["evt_bad"]["traceback"]
    assert "apply_invoices_failed" in events["evt_bad"]["traceback"]
    assert all(
        r["status"] == "handled" and r["error"] is None for e, r in events.items() if e != "evt_bad"
    )
    cases = rows("SELECT invoice_id, state FROM dunning_cases ORDER BY invoice_id")
    assert cases == [{"invoice_id": f"in_batch_{n}", "state": "open"} for n in range(5)]
    # Applying the batch again changes nothing and counts the handled ones as skipped.
    assert handle_events(pks) == {"skipped": 5, "failed": 1}


def test_a_batch_applies_each_event_once(clean_db: None) -> None:
    pks = store(*(event("invoice.payment_failed", _failed_invoice(n), created=T) for n in range(3)))
    assert handle_events(pks + pks[:1]) == {"handled": 3}
    assert handle_events(pks) == {"skipped": 3}
    attempts = rows("SELECT invoice_id, attempt_number FROM charge_attempts ORDER BY invoice_id")
    assert attempts == [{"invoice_id": f"in_batch_{n}", "attempt_number": 1} for n in range(3)]
    assert rows("SELECT count(*) AS n FROM case_decisions") == [{"n": 3}]


def test_a_short_batch_is_topped_up_with_other_pending_events(clean_db: None) -> None:
    bad = event("invoice.payment_failed", {"object": "invoice"}, created=T, event_id="evt_bad")
    [bad_pk] = store(bad)
    assert handle_events([bad_pk]) == {"failed": 1}
    pks = store(*(event("invoice.payment_failed", _failed_invoice(n), created=T) for n in range(4)))

    # The first event's message applies all four; a failed event waits for a replay.
    assert handle_events(pks[:1], top_up=True) == {"handled": 4}
    assert handle_events(pks[1:], top_up=True) == {"skipped": 3}
    statuses = rows("SELECT event_id, status FROM processor_events ORDER BY id")
    assert [r["status"] for r in statuses] == ["failed"] + ["handled"] * 4
    assert len(rows("SELECT id FROM dunning_cases")) == 4


def test_phone_and_start_date_follow_the_version_rule(clean_db: None) -> None:
    newer = fixture("customer", phone="+33612345678")
    older = fixture("customer", phone="+33100000000")
    sub_newer = fixture("subscription", start_date=1_700_000_000)
    sub_older = fixture("subscription", start_date=None, created=1_600_000_000)
    pks = store(
        event("customer.updated", newer, created=T + 60, event_id="evt_cus_new"),
        event("customer.updated", older, created=T, event_id="evt_cus_old"),
        event("customer.subscription.updated", sub_newer, created=T + 60, event_id="evt_sub_new"),
        event("customer.subscription.updated", sub_older, created=T, event_id="evt_sub_old"),
    )
    assert handle_events(pks) == {"handled": 4}
    assert rows("SELECT phone FROM customers") == [{"phone": "+33612345678"}]
    [sub] = rows("SELECT start_date FROM subscriptions")
    assert sub["start_date"].timestamp() == 1_700_000_000

    [pk] = store(event("customer.subscription.updated", sub_older, created=T + 120))
    assert handle_event(pk) == "handled"
    [sub] = rows("SELECT start_date FROM subscriptions")
    assert sub["start_date"].timestamp() == 1_600_000_000  # a newer snapshot wins


def test_a_pause_at_the_processor_is_mirrored_and_an_older_shape_keeps_it(
    clean_db: None,
) -> None:
    paused = fixture("subscription", pause_collection={"behavior": "keep_as_draft"})
    unsaid = {k: v for k, v in fixture("subscription").items() if k != "pause_collection"}
    resumed = fixture("subscription", pause_collection=None)

    def apply(obj: dict[str, Any], at: int) -> object:
        [pk] = store(event("customer.subscription.updated", obj, created=at))
        assert handle_event(pk) == "handled"
        return rows("SELECT pause_behavior FROM subscriptions")[0]["pause_behavior"]

    assert apply(paused, T) == "keep_as_draft"
    assert apply(unsaid, T + 60) == "keep_as_draft"  # a shape without the field says nothing
    assert apply(resumed, T + 120) is None
    assert apply(paused, T + 30) is None  # an older snapshot never wins


# --- current API: a charge names its payment intent, the invoice payment links it ---

INVOICE, PI, CUSTOMER = "in_pi_1", "pi_link_1", "cus_pi_1"


def _intent_charge(ch_id: str, t: int) -> dict[str, Any]:
    obj = fixture(
        "charge",
        id=ch_id,
        customer=CUSTOMER,
        status="failed",
        paid=False,
        created=t,
        failure_code="card_declined",
        payment_intent=PI,
    )
    obj.pop("invoice", None)
    return obj


def _link_events() -> list[dict[str, Any]]:
    payment = fixture(
        "invoice_payment",
        id="inpay_1",
        invoice=INVOICE,
        status="paid",
        payment={"type": "payment_intent", "payment_intent": PI},
    )
    return [
        event("charge.failed", _intent_charge("ch_pi_1", T), created=T, event_id="evt_c1"),
        event("charge.failed", _intent_charge("ch_pi_2", T + 60), created=T + 60, event_id="e2"),
        event("invoice_payment.paid", payment, created=T + 120, event_id="evt_link"),
    ]


def _ledger() -> dict[str, list[dict[str, Any]]]:
    return {
        "attempts": rows(
            "SELECT attempt_key, invoice_id, attempt_number, outcome, attempted_at"
            " FROM charge_attempts ORDER BY attempt_key"
        ),
        "invoices": rows("SELECT id, customer_id, status FROM invoices ORDER BY id"),
        "cases": rows("SELECT invoice_id, customer_id, state, opened_at FROM dunning_cases"),
        "links": rows("SELECT payment_intent_id, invoice_id FROM invoice_payments"),
        "pending": rows(
            "SELECT dedupe_key FROM scheduled_actions WHERE status = 'pending' ORDER BY 1"
        ),
    }


def _apply_in_order(order: list[int], *, batched: bool) -> dict[str, list[dict[str, Any]]]:
    events = _link_events()
    pks = store(*(events[i] for i in order))
    if batched:
        assert handle_events(pks) == {"handled": len(pks)}
    else:
        assert [handle_event(pk) for pk in pks] == ["handled"] * len(pks)
    return _ledger()


@pytest.mark.parametrize("batched", [False, True])
def test_a_charge_finds_its_invoice_through_the_payment_in_any_order(
    clean_db: None, batched: bool
) -> None:
    ledger = _apply_in_order([2, 0, 1], batched=batched)  # the link first
    keys = ("attempt_key", "invoice_id", "attempt_number")
    attempts = [tuple(a[k] for k in keys) for a in ledger["attempts"]]
    assert attempts == [("ch_pi_1", INVOICE, 1), ("ch_pi_2", INVOICE, 2)]
    assert ledger["invoices"] == [{"id": INVOICE, "customer_id": CUSTOMER, "status": "unknown"}]
    [case] = ledger["cases"]
    assert (case["customer_id"], case["state"], case["opened_at"].timestamp()) == (
        CUSTOMER,
        "open",
        T,
    )
    assert ledger["pending"], "the case's next action is planned"

    for order in ([0, 1, 2], [1, 2, 0], [0, 2, 1], [1, 0, 2]):
        _truncate()
        assert _apply_in_order(order, batched=batched) == ledger, order


def _truncate() -> None:
    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with get_engine().begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))


def test_a_charge_without_invoice_or_link_stays_unattached(clean_db: None) -> None:
    [pk] = store(_link_events()[0])
    assert handle_event(pk) == "handled"
    assert rows("SELECT invoice_id FROM charge_attempts") == [{"invoice_id": None}]
    assert rows("SELECT count(*) AS n FROM dunning_cases") == [{"n": 0}]


def _invoice_failed(attempt: int, at: int) -> dict[str, Any]:
    """The current API's ``invoice.payment_failed``: it names no charge."""
    obj = fixture(
        "invoice",
        id=INVOICE,
        customer=CUSTOMER,
        status="open",
        attempt_count=attempt,
        amount_due=4900,
        charge=None,
    )
    return event("invoice.payment_failed", obj, created=at, event_id=f"evt_inv_{attempt}")


def test_an_invoice_failure_and_its_charge_count_once_in_any_order(clean_db: None) -> None:
    """The stand-in ``<invoice>#<n>`` of an invoice event that names no charge is the
    n-th failed charge: once the charge is linked, the failure is one attempt, not two."""
    events = [*_link_events(), _invoice_failed(1, T + 5), _invoice_failed(2, T + 65)]
    seen = []
    for order in ([3, 0, 4, 1, 2], [2, 0, 1, 3, 4], [3, 4, 2, 1, 0], [0, 1, 2, 3, 4]):
        _truncate()
        pks = store(*(events[i] for i in order))
        assert [handle_event(pk) for pk in pks] == ["handled"] * len(pks)
        seen.append(
            rows(
                "SELECT attempt_key, invoice_id, attempt_number FROM charge_attempts"
                " ORDER BY attempt_key"
            )
        )
    assert seen[0] == [
        {"attempt_key": "ch_pi_1", "invoice_id": INVOICE, "attempt_number": 1},
        {"attempt_key": "ch_pi_2", "invoice_id": INVOICE, "attempt_number": 2},
    ]
    assert all(s == seen[0] for s in seen), seen


def test_an_invoice_failure_whose_charge_is_not_linked_yet_still_counts(clean_db: None) -> None:
    pks = store(_link_events()[0], _invoice_failed(1, T + 5), _invoice_failed(2, T + 65))
    assert [handle_event(pk) for pk in pks] == ["handled"] * 3
    keys = rows(
        "SELECT attempt_key FROM charge_attempts WHERE invoice_id = :i ORDER BY 1", i=INVOICE
    )
    assert [k["attempt_key"] for k in keys] == [f"{INVOICE}#1", f"{INVOICE}#2"]
