"""Events stored and handled as the webhook and the worker would, and the cases they open."""

from __future__ import annotations

import json
from typing import Any

from dunning.db import session_scope
from dunning.events.service import handle_event, store_events
from dunning.events.store import parse_event
from tests.support.ledger import rows
from tests.support.stripe_events import event, fixture


def store(*raws: dict[str, Any]) -> list[int]:
    """Store raw Stripe events like the webhook does; their primary keys, not yet handled."""
    with session_scope() as session:
        return store_events(session, [parse_event(json.dumps(r).encode(), {}) for r in raws])


def fail_invoice(
    invoice_id: str,
    *,
    created: int,
    network_decline_code: str | None = None,
    reason: str = "insufficient_funds",
    next_attempt: int | None = None,
) -> None:
    """Apply a failed charge and its invoice.payment_failed, as the worker would."""
    charge = fixture(
        "charge",
        id=f"ch_{invoice_id}",
        status="failed",
        paid=False,
        customer="cus_ops",
        invoice=invoice_id,
        created=created,
        amount=1000,
    )
    charge["outcome"] = {
        **charge["outcome"],
        "type": "issuer_declined",
        "reason": reason,
        "network_decline_code": network_decline_code,
    }
    invoice = fixture(
        "invoice",
        id=invoice_id,
        customer="cus_ops",
        status="open",
        attempt_count=1,
        charge=charge["id"],
        next_payment_attempt=next_attempt,
    )
    ids = store(
        event("charge.failed", charge, created=created, event_id=f"e_{invoice_id}_c"),
        event("invoice.payment_failed", invoice, created=created, event_id=f"e_{invoice_id}_i"),
    )
    for pk in ids:
        assert handle_event(pk) == "handled"


def case_row(invoice_id: str) -> dict[str, Any]:
    """The case opened for ``invoice_id``: its id, state and whether it is paused."""
    [case] = rows("SELECT id, state, paused FROM dunning_cases WHERE invoice_id = :i", i=invoice_id)
    return case
