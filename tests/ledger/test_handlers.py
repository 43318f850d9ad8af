"""Every event type the service handles, applied to the real database from Stripe's
published example objects."""

from __future__ import annotations

import pytest

from dunning.db import session_scope
from dunning.events.service import HANDLERS, handle_event, store_events
from dunning.events.store import parse_event
from tests.support.ledger import rows
from tests.support.stripe_events import event, fixture

_OBJECT_FOR = {
    "invoice": "invoice",
    "customer": "customer",
    "payment_method": "payment_method",
    "charge": "charge",
}


def _object_for(event_type: str) -> dict[str, object]:
    if event_type.startswith("customer.subscription."):
        return fixture("subscription")
    if event_type.startswith("customer.source."):
        return fixture("card", customer="cus_QXg1o8vcGmoR32")
    if event_type == "customer.deleted":
        return fixture("deleted_customer")
    return fixture(_OBJECT_FOR[event_type.split(".")[0]])


@pytest.mark.parametrize("event_type", sorted(HANDLERS))
def test_each_handled_type_applies_a_fixture_object(clean_db: None, event_type: str) -> None:
    raw = event(event_type, _object_for(event_type), event_id=f"evt_{event_type}")
    import json

    with session_scope() as session:
        [pk] = store_events(session, [parse_event(json.dumps(raw).encode(), {})])
    assert handle_event(pk) == "handled"
    [stored] = rows("SELECT status, error, handled_at FROM processor_events")
    assert stored["status"] == "handled" and stored["error"] is None
    assert handle_event(pk) is None  # already handled: a second run does nothing
