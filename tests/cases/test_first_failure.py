"""The first failure's decline code and card brand kept on the case (``cases.service``)
are what the reports looked up in the ledger before: whatever order the charges arrive in.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

from sqlalchemy import text

from dunning.db import get_engine
from dunning.events.service import handle_event
from dunning.migrate import MIGRATIONS
from tests.support.cases import store
from tests.support.ledger import rows
from tests.support.stripe_events import event, fixture

T = int(time.time()) - 3 * 86_400

# The invoice's first failed charge (time, then id), as the breakdowns read it until
# migration 0016: its decline code, else its failure code, and its card brand.
LIVE = """
    SELECT c.invoice_id, c.first_decline_code AS stored_code,
           c.first_card_brand AS stored_brand, ff.decline_code, ff.card_brand
    FROM dunning_cases c LEFT JOIN LATERAL (
        SELECT coalesce(a.decline_code, a.failure_code) AS decline_code, a.card_brand
        FROM charge_attempts a
        WHERE a.invoice_id = c.invoice_id AND a.outcome = 'failed'
        ORDER BY a.attempted_at, a.id LIMIT 1) ff ON true
    ORDER BY c.invoice_id"""


def _charge(
    ch_id: str, invoice_id: str, created: int, reason: str | None, brand: str | None
) -> dict[str, Any]:
    """A failed charge; ``reason`` None: the processor gave no decline code."""
    obj = fixture(
        "charge",
        id=ch_id,
        status="failed",
        paid=False,
        customer="cus_ff",
        invoice=invoice_id,
        created=created,
        amount=1000,
        failure_code="card_declined",
    )
    obj["outcome"] = {**obj["outcome"], "type": "issuer_declined" if reason else "invalid"}
    obj["outcome"]["reason"] = reason
    obj["payment_method_details"]["card"]["brand"] = brand
    return event("charge.failed", obj, created=created, event_id=f"e_{ch_id}")


def _invoice_failed(invoice_id: str, charge_id: str, created: int) -> dict[str, Any]:
    """``invoice.payment_failed`` naming its charge (older API): timed by the event."""
    obj = fixture(
        "invoice",
        id=invoice_id,
        customer="cus_ff",
        status="open",
        attempt_count=1,
        charge=charge_id,
        amount_due=1000,
    )
    return event("invoice.payment_failed", obj, created=created, event_id=f"e_{invoice_id}_f")


def _invoice_paid(invoice_id: str, created: int) -> dict[str, Any]:
    obj = fixture(
        "invoice",
        id=invoice_id,
        customer="cus_ff",
        status="paid",
        amount_due=1000,
        amount_paid=1000,
    )
    return event("invoice.paid", obj, created=created, event_id=f"e_{invoice_id}_p")


# Arrival order. in_late: its earliest charge arrives last. in_retimed: the invoice event
# times its charge late, then the charge's own (earlier) time wins. in_tie: two charges at
# the same second; the one recorded first (lower id) is first, though its key sorts last.
ARRIVALS: list[tuple[dict[str, Any], dict[str, tuple[str | None, str | None]]]] = [
    (_charge("ch_late_b", "in_late", T + 200, "do_not_honor", "mastercard"),
     {"in_late": ("do_not_honor", "mastercard")}),
    (_charge("ch_late_c", "in_late", T + 400, "generic_decline", "visa"),
     {"in_late": ("do_not_honor", "mastercard")}),
    (_invoice_failed("in_retimed", "ch_ret_2", T + 500), {"in_retimed": (None, None)}),
    (_charge("ch_ret_1", "in_retimed", T + 300, "expired_card", "visa"),
     {"in_retimed": ("expired_card", "visa")}),
    (_charge("ch_tie_z", "in_tie", T + 100, None, None), {"in_tie": ("card_declined", None)}),
    (_charge("ch_tie_a", "in_tie", T + 100, "insufficient_funds", "visa"),
     {"in_tie": ("card_declined", None)}),
    (_charge("ch_late_a", "in_late", T + 100, "insufficient_funds", "amex"),
     {"in_late": ("insufficient_funds", "amex")}),
    (_charge("ch_ret_2", "in_retimed", T + 100, "stolen_card", "discover"),
     {"in_retimed": ("stolen_card", "discover")}),
    (_invoice_paid("in_late", T + 600), {"in_late": ("insufficient_funds", "amex")}),
]  # fmt: skip


def _stored() -> dict[str, tuple[str | None, str | None]]:
    return {
        r["invoice_id"]: (r["first_decline_code"], r["first_card_brand"])
        for r in rows("SELECT invoice_id, first_decline_code, first_card_brand FROM dunning_cases")
    }


def test_the_stored_first_failure_is_the_live_one_in_any_arrival_order(clean_db: None) -> None:
    for raw, expected in ARRIVALS:
        [pk] = store(raw)
        assert handle_event(pk) == "handled"
        live = rows(LIVE)
        assert [(r["stored_code"], r["stored_brand"]) for r in live] == [
            (r["decline_code"], r["card_brand"]) for r in live
        ], raw["id"]
        stored = _stored()
        assert {i: stored[i] for i in expected} == expected, raw["id"]
    assert _stored() == {
        "in_late": ("insufficient_funds", "amex"),
        "in_retimed": ("stolen_card", "discover"),
        "in_tie": ("card_declined", None),
    }
    [state] = rows("SELECT state FROM dunning_cases WHERE invoice_id = 'in_late'")
    assert state == {"state": "recovered"}


def test_the_migration_fills_in_what_the_service_stores(clean_db: None) -> None:
    for raw, _ in ARRIVALS:
        [pk] = store(raw)
        assert handle_event(pk) == "handled"
    stored = _stored()
    path = MIGRATIONS / "versions" / "0016_first_failure_on_case.py"
    spec = importlib.util.spec_from_file_location("migration_0016", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    with get_engine().connect() as conn:
        conn.execute(
            text("UPDATE dunning_cases SET first_decline_code = NULL, first_card_brand = NULL")
        )
        conn.execute(text(migration.BACKFILL))
        filled = conn.execute(
            text("SELECT invoice_id, first_decline_code, first_card_brand FROM dunning_cases")
        ).all()
        conn.rollback()
    assert {r[0]: (r[1], r[2]) for r in filled} == stored
