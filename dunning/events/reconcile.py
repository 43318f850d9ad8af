"""The reconciler: what the webhooks missed, found by asking the processor.

Stripe retries webhooks for days and a Stripe-compatible sandbox never does, so no
user may depend on delivery. Findings are stored as synthetic events with stable ids
(``reconcile:…``) and go through exactly the same path as webhooks: stored once,
applied idempotently, visible and replayable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

from sqlalchemy import select

from dunning.cases.models import CaseState, DunningCase
from dunning.db import session_scope
from dunning.events import service
from dunning.events.store import IncomingEvent
from dunning.processors import stripe_objects as so
from dunning.processors.stripe_adapter import StripeAdapter

log = logging.getLogger(__name__)

_FINAL_EVENT = {
    "paid": "invoice.paid",
    "void": "invoice.voided",
    "uncollectible": "invoice.marked_uncollectible",
}


def _synthetic(event_id: str, event_type: str, obj: dict[str, Any], seen_at: int) -> IncomingEvent:
    body = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": seen_at,
        "livemode": obj.get("livemode"),
        "data": {"object": obj},
    }
    return IncomingEvent(
        event_id=event_id,
        type=event_type,
        livemode=obj.get("livemode"),
        created=seen_at,
        body=json.dumps(body, sort_keys=True),
        headers={},
        source="reconciler",
        object_id=obj.get("id"),
    )


def _snapshot(event_type: str, obj: dict[str, Any], seen_at: int) -> IncomingEvent:
    """A current copy of an object, keyed by its content: stored once per version."""
    digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
    return _synthetic(f"reconcile:{obj['id']}:{digest}", event_type, obj, seen_at)


def _context(adapter: StripeAdapter, invoice: dict[str, Any], seen_at: int) -> list[IncomingEvent]:
    """The customer, subscription and charged card of a failed invoice, so its case knows
    the customer's time zone, the plan and the card even when their webhooks never came."""
    customer = invoice.get("customer")
    if not isinstance(customer, str):
        return []
    read = adapter.charged_card(customer, so.read_invoice(invoice).subscription_id)
    found = [_snapshot("customer.updated", read.customer, seen_at)]
    if read.subscription is not None:
        found.append(_snapshot("customer.subscription.updated", read.subscription, seen_at))
    if read.payment_method is not None:
        found.append(_snapshot("payment_method.updated", read.payment_method, seen_at))
    return found


def find_missed(adapter: StripeAdapter, open_case_limit: int = 500) -> list[IncomingEvent]:
    """Failed open invoices at the processor, and open cases whose invoice was settled."""
    seen_at = int(time.time())  # taken before reading: a snapshot is never newer than this
    found: list[IncomingEvent] = []
    for invoice in adapter.open_invoices():
        attempts = int(invoice.get("attempt_count") or 0)
        if attempts < 1 or invoice.get("collection_method", "charge_automatically") != (
            "charge_automatically"
        ):
            continue
        found.extend(_context(adapter, invoice, seen_at))
        charge = invoice.get("charge")
        if isinstance(charge, str):
            charge = adapter.charge(charge)
        if isinstance(charge, dict) and charge.get("status") == "failed":
            charge = {**charge, "invoice": charge.get("invoice") or invoice["id"]}
            found.append(_synthetic(f"reconcile:{charge['id']}", "charge.failed", charge, seen_at))
        if adapter.needs_authentication(invoice):  # no off-session retry may follow
            event_id, event_type = "action_required", "invoice.payment_action_required"
        else:
            event_id, event_type = "failed", "invoice.payment_failed"
        found.append(
            _synthetic(
                f"reconcile:{invoice['id']}:{event_id}:{attempts}", event_type, invoice, seen_at
            )
        )
    with session_scope() as session:
        open_invoices = session.scalars(
            select(DunningCase.invoice_id)
            .where(DunningCase.state == CaseState.OPEN)
            .order_by(DunningCase.updated_at)
            .limit(open_case_limit)
        ).all()
    for invoice_id in open_invoices:
        invoice = adapter.invoice(invoice_id)
        final = _FINAL_EVENT.get(str(invoice.get("status")))
        if final:
            found.append(
                _synthetic(f"reconcile:{invoice_id}:{invoice['status']}", final, invoice, seen_at)
            )
    return found


def reconcile(adapter: StripeAdapter) -> int:
    """Store what the webhooks missed; return how many new events were stored."""
    events = find_missed(adapter)
    with session_scope() as session:
        new_ids = service.store_events(session, events)
    if new_ids:
        log.info("reconciler stored %d missed events", len(new_ids))
    return len(new_ids)
