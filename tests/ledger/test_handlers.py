"""Every event type the service handles, applied to the real database from Stripe's
published example objects.

Each type states the ledger rows (customer, subscription, payment method, invoice, charge
attempt) and the case its handler must add or change, and nothing else may change: the
six tables are read before and after the event, so a handler replaced by a no-op, or one
writing the wrong row, fails here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from dunning.events.service import HANDLERS, handle_event
from tests.support.cases import store
from tests.support.ledger import rows
from tests.support.stripe_events import event, fixture

# The ids Stripe's example objects refer to each other by.
CUSTOMER = "cus_QXg1o8vcGmoR32"
SUBSCRIPTION = "sub_1Pgc6rB7WZ01zgkWNy0Cn5nw"
INVOICE = "in_1Pgc6tB7WZ01zgkWu9fdqL6I"
CHARGE = "ch_1PgafuB7WZ01zgkWXYmPNZs8"
PAYMENT_METHOD = "pm_1Pgc75B7WZ01zgkWlHVgdEGJ"
CARD = "card_1PgaftB7WZ01zgkWm3waTcFp"
PAYMENT_INTENT = "pi_3PgafuB7WZ01zgkW0Xq9Tx2b"

T = int(time.time()) - 600  # when the event under test happened; what it builds on is older
EARLIER = T - 60
DAY = 86_400

# The ledger tables and the case table, each with the column that names a row.
TABLES = {
    "customers": "id",
    "subscriptions": "id",
    "payment_methods": "id",
    "invoices": "id",
    "charge_attempts": "attempt_key",
    "dunning_cases": "invoice_id",
}
_BOOKKEEPING = {"updated_at", "version"}  # change with every write, say nothing about it

Rows = dict[str, list[dict[str, Any]]]


def at(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def example(kind: str, values: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Stripe's example ``kind`` with ``values``, then ``overrides``, as top-level fields."""
    obj = fixture(kind)
    obj.update({**values, **overrides})
    return obj


def customer(**overrides: Any) -> dict[str, Any]:
    values = {
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "preferred_locales": ["fr"],
        "metadata": {"time_zone": "Europe/Paris", "segment": "smb"},
    }
    return example("customer", values, overrides)


def subscription(status: str = "active", **overrides: Any) -> dict[str, Any]:
    values = {
        "status": status,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "current_period_end": T + 30 * DAY,
    }
    return example("subscription", values, overrides)


def invoice(status: str = "open", **overrides: Any) -> dict[str, Any]:
    """The example invoice, on our subscription (current ``parent`` shape), $49 due."""
    values: dict[str, Any] = {
        "status": status,
        "parent": {
            "type": "subscription_details",
            "subscription_details": {"metadata": None, "subscription": SUBSCRIPTION},
        },
        "amount_due": 4900,
        "attempt_count": 1,
        "charge": CHARGE,
        "created": EARLIER,
    }
    return example("invoice", values, overrides)


def charge(*, failed: bool) -> dict[str, Any]:
    """The example charge, on our customer's invoice; declined for insufficient funds."""
    obj = fixture("charge", customer=CUSTOMER, invoice=INVOICE, created=T)
    if failed:
        obj.update(status="failed", paid=False, failure_code="card_declined")
        obj["outcome"] = {
            **obj["outcome"],
            "type": "issuer_declined",
            "reason": "insufficient_funds",
        }
    return obj


def intent_charge() -> dict[str, Any]:
    """A failed charge of the current API: it names its payment intent, not its invoice."""
    obj = charge(failed=True)
    obj.pop("invoice", None)
    obj["payment_intent"] = PAYMENT_INTENT
    return obj


def invoice_payment() -> dict[str, Any]:
    """Stripe's ``invoice_payment``: our invoice is paid by ``PAYMENT_INTENT``."""
    return fixture(
        "invoice_payment",
        id="inpay_1PgafuB7WZ01zgkW",
        invoice=INVOICE,
        status="paid",
        payment={"type": "payment_intent", "payment_intent": PAYMENT_INTENT},
    )


def payment_method(**card: Any) -> dict[str, Any]:
    obj = fixture("payment_method", customer=CUSTOMER)
    obj["card"] = {**obj["card"], **card}
    return obj


def card(**overrides: Any) -> dict[str, Any]:
    return fixture("card", customer=CUSTOMER, **overrides)


def upcoming_invoice() -> dict[str, Any]:
    obj = invoice("draft", amount_due=5900, attempt_count=0, next_payment_attempt=T + 7 * DAY)
    del obj["id"]  # an upcoming invoice does not exist yet
    return obj


@dataclass(frozen=True)
class Scenario:
    """An event's object, the rows it must add or change, and older events it builds on."""

    obj: dict[str, Any]
    changes: Rows
    given: tuple[tuple[str, dict[str, Any]], ...] = ()


FAILED_INVOICE = ("invoice.payment_failed", invoice())
ATTACHED = ("payment_method.attached", payment_method())

# A failed invoice's case closing: the invoice's new state, and the case's.
_CLOSED: dict[str, tuple[str, dict[str, Any]]] = {
    "paid": ("recovered", {"status_transitions": {"paid_at": T}, "amount_paid": 4900}),
    "void": ("voided", {"status_transitions": {"voided_at": T}}),
    "uncollectible": ("uncollectible", {"status_transitions": {"marked_uncollectible_at": T}}),
}


def _closing(status: str) -> Scenario:
    state, fields = _CLOSED[status]
    at_key = {"paid": "paid_at", "void": "voided_at"}.get(status, "marked_uncollectible_at")
    return Scenario(
        invoice(status, **fields),
        {
            "invoices": [{"id": INVOICE, "status": status, at_key: at(T)}],
            "dunning_cases": [{"invoice_id": INVOICE, "state": state, "closed_at": at(T)}],
        },
        given=(FAILED_INVOICE,),
    )


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "customer.created": lambda: Scenario(
        customer(),
        {
            "customers": [
                {
                    "id": CUSTOMER,
                    "email": "ada@example.com",
                    "name": "Ada Lovelace",
                    "locale": "fr",
                    "time_zone": "Europe/Paris",
                    "segment": "smb",
                    "deleted": False,
                }
            ]
        },
    ),
    "customer.updated": lambda: Scenario(
        customer(email="ada@new.example"),
        {"customers": [{"id": CUSTOMER, "email": "ada@new.example", "deleted": False}]},
        given=(("customer.created", customer()),),
    ),
    "customer.deleted": lambda: Scenario(
        fixture("deleted_customer"),
        {"customers": [{"id": CUSTOMER, "deleted": True}]},
        given=(("customer.created", customer()),),
    ),
    "customer.subscription.created": lambda: Scenario(
        subscription(),
        {
            "subscriptions": [
                {
                    "id": SUBSCRIPTION,
                    "customer_id": CUSTOMER,
                    "status": "active",
                    "amount": 2000,
                    "currency": "usd",
                    "interval": "month",
                    "current_period_end": at(T + 30 * DAY),
                    "canceled_at": None,
                }
            ]
        },
    ),
    "customer.subscription.updated": lambda: Scenario(
        subscription("past_due"),
        {"subscriptions": [{"id": SUBSCRIPTION, "status": "past_due"}]},
        given=(("customer.subscription.created", subscription()),),
    ),
    "customer.subscription.deleted": lambda: Scenario(
        subscription("canceled", canceled_at=T),
        {
            "subscriptions": [{"id": SUBSCRIPTION, "status": "canceled", "canceled_at": at(T)}],
            "dunning_cases": [{"invoice_id": INVOICE, "state": "canceled", "closed_at": at(T)}],
        },
        given=(FAILED_INVOICE,),
    ),
    "payment_method.attached": lambda: Scenario(
        payment_method(),
        {
            "payment_methods": [
                {
                    "id": PAYMENT_METHOD,
                    "customer_id": CUSTOMER,
                    "brand": "visa",
                    "last4": "4242",
                    "exp_month": 8,
                    "exp_year": 2030,
                    "detached": False,
                    "updated_by_network_at": None,
                }
            ]
        },
    ),
    "payment_method.updated": lambda: Scenario(
        payment_method(exp_month=9, exp_year=2031),
        {"payment_methods": [{"id": PAYMENT_METHOD, "exp_month": 9, "exp_year": 2031}]},
        given=(ATTACHED,),
    ),
    "payment_method.detached": lambda: Scenario(
        fixture("payment_method"),  # no customer any more
        {"payment_methods": [{"id": PAYMENT_METHOD, "customer_id": CUSTOMER, "detached": True}]},
        given=(ATTACHED,),
    ),
    "payment_method.automatically_updated": lambda: Scenario(
        payment_method(last4="1881", exp_year=2033),
        {
            "payment_methods": [
                {
                    "id": PAYMENT_METHOD,
                    "last4": "1881",
                    "exp_year": 2033,
                    "updated_by_network_at": at(T),
                }
            ]
        },
        given=(ATTACHED,),
    ),
    "customer.source.created": lambda: Scenario(
        card(),
        {
            "payment_methods": [
                {"id": CARD, "customer_id": CUSTOMER, "brand": "visa", "last4": "4242"}
            ]
        },
    ),
    "customer.source.updated": lambda: Scenario(
        card(exp_year=2032),
        {"payment_methods": [{"id": CARD, "exp_year": 2032}]},
        given=(("customer.source.created", card()),),
    ),
    "customer.source.expiring": lambda: Scenario(
        card(),
        {"payment_methods": [{"id": CARD, "customer_id": CUSTOMER, "exp_month": 8}]},
    ),
    "charge.failed": lambda: Scenario(
        charge(failed=True),
        {
            "invoices": [{"id": INVOICE, "customer_id": CUSTOMER, "status": "unknown"}],
            "charge_attempts": [
                {
                    "attempt_key": CHARGE,
                    "charge_id": CHARGE,
                    "invoice_id": INVOICE,
                    "customer_id": CUSTOMER,
                    "attempted_at": at(T),
                    "outcome": "failed",
                    "failure_code": "card_declined",
                    "decline_code": "insufficient_funds",
                    "card_last4": "4242",
                    "triggered_by": "processor",
                }
            ],
            "dunning_cases": [
                {
                    "invoice_id": INVOICE,
                    "customer_id": CUSTOMER,
                    "state": "open",
                    "opened_at": at(T),
                }
            ],
        },
    ),
    "charge.succeeded": lambda: Scenario(
        charge(failed=False),
        {
            "invoices": [{"id": INVOICE, "customer_id": CUSTOMER, "status": "unknown"}],
            "charge_attempts": [
                {"attempt_key": CHARGE, "invoice_id": INVOICE, "outcome": "succeeded"}
            ],
        },
    ),
    "invoice.payment_failed": lambda: Scenario(
        invoice(),
        {
            # The case shares a lock on its subscription, creating a bare row if unseen.
            "subscriptions": [{"id": SUBSCRIPTION, "status": "unknown"}],
            "invoices": [
                {
                    "id": INVOICE,
                    "customer_id": CUSTOMER,
                    "subscription_id": SUBSCRIPTION,
                    "status": "open",
                    "amount_due": 4900,
                    "attempt_count": 1,
                }
            ],
            "charge_attempts": [
                {
                    "attempt_key": CHARGE,
                    "invoice_id": INVOICE,
                    "attempt_number": 1,
                    "attempted_at": at(T),
                    "amount": 4900,
                    "outcome": "failed",
                    "triggered_by": "processor",
                }
            ],
            "dunning_cases": [
                {
                    "invoice_id": INVOICE,
                    "customer_id": CUSTOMER,
                    "subscription_id": SUBSCRIPTION,
                    "state": "open",
                    "amount": 4900,
                    "opened_at": at(T),
                }
            ],
        },
    ),
    "invoice.payment_action_required": lambda: Scenario(
        invoice(),
        {
            # As a failed payment, and the case waits for the customer to authenticate.
            "subscriptions": [{"id": SUBSCRIPTION, "status": "unknown"}],
            "invoices": [{"id": INVOICE, "status": "open", "attempt_count": 1}],
            "charge_attempts": [
                {
                    "attempt_key": CHARGE,
                    "invoice_id": INVOICE,
                    "attempt_number": 1,
                    "outcome": "failed",
                    "failure_code": "authentication_required",
                    "triggered_by": "processor",
                }
            ],
            "dunning_cases": [
                {
                    "invoice_id": INVOICE,
                    "state": "open",
                    "opened_at": at(T),
                    "awaiting_action_since": at(T),
                    "decline_class": "authentication_required",
                }
            ],
        },
    ),
    "invoice_payment.paid": lambda: Scenario(
        invoice_payment(),
        {
            # The charge that came first, naming only its payment intent, is attached.
            "invoices": [{"id": INVOICE, "status": "unknown"}],
            "charge_attempts": [
                {
                    "attempt_key": CHARGE,
                    "payment_intent_id": PAYMENT_INTENT,
                    "invoice_id": INVOICE,
                    "attempt_number": 1,
                    "outcome": "failed",
                }
            ],
            "dunning_cases": [
                {
                    "invoice_id": INVOICE,
                    "customer_id": CUSTOMER,
                    "state": "open",
                    "opened_at": at(T),
                }
            ],
        },
        given=(("charge.failed", intent_charge()),),
    ),
    "invoice.payment_succeeded": lambda: _closing("paid"),
    "invoice.paid": lambda: _closing("paid"),
    "invoice.voided": lambda: _closing("void"),
    "invoice.marked_uncollectible": lambda: _closing("uncollectible"),
    "invoice.created": lambda: Scenario(
        invoice("draft", attempt_count=0, charge=None),
        {
            "invoices": [
                {
                    "id": INVOICE,
                    "subscription_id": SUBSCRIPTION,
                    "status": "draft",
                    "amount_due": 4900,
                    "attempt_count": 0,
                }
            ]
        },
    ),
    "invoice.finalized": lambda: Scenario(
        invoice("open", attempt_count=0, charge=None),
        {"invoices": [{"id": INVOICE, "status": "open"}]},
        given=(("invoice.created", invoice("draft", attempt_count=0, charge=None)),),
    ),
    "invoice.updated": lambda: Scenario(
        invoice("open", amount_due=5900, attempt_count=0, charge=None),
        {"invoices": [{"id": INVOICE, "status": "open", "amount_due": 5900}]},
        given=(("invoice.created", invoice("draft", attempt_count=0, charge=None)),),
    ),
    "invoice.upcoming": lambda: Scenario(
        upcoming_invoice(),
        {
            "subscriptions": [
                {
                    "id": SUBSCRIPTION,
                    "status": "active",
                    "upcoming_amount": 5900,
                    "upcoming_at": at(T + 7 * DAY),
                }
            ]
        },
        given=(("customer.subscription.created", subscription()),),
    ),
}


def _ledger() -> dict[str, dict[Any, dict[str, Any]]]:
    """Every row of the six tables, by the column naming it, without bookkeeping columns."""
    return {
        name: {
            row[key]: {k: v for k, v in row.items() if k not in _BOOKKEEPING}
            for row in rows(f"SELECT * FROM {name}")
        }
        for name, key in TABLES.items()
    }


def _changed(before: dict[str, dict[Any, dict[str, Any]]]) -> Rows:
    """Rows added or changed since ``before``, per table, in the order of their names."""
    after = _ledger()
    return {
        name: [row for key, row in sorted(after[name].items()) if before[name].get(key) != row]
        for name in TABLES
    }


def _apply(event_type: str, obj: dict[str, Any], created: int) -> int:
    [pk] = store(event(event_type, obj, created=created, event_id=f"evt_{event_type}_{created}"))
    return pk


def test_every_handled_type_states_what_it_must_change() -> None:
    assert set(SCENARIOS) == set(HANDLERS)


@pytest.mark.parametrize("event_type", sorted(HANDLERS))
def test_each_handled_type_makes_its_ledger_rows(clean_db: None, event_type: str) -> None:
    scenario = SCENARIOS[event_type]()
    for given_type, given_obj in scenario.given:
        assert handle_event(_apply(given_type, given_obj, EARLIER)) == "handled"
    before = _ledger()

    pk = _apply(event_type, scenario.obj, T)
    assert handle_event(pk) == "handled"
    [stored] = rows("SELECT status, error, handled_at FROM processor_events WHERE id = :pk", pk=pk)
    assert stored["status"] == "handled" and stored["error"] is None

    changed = _changed(before)
    for table in TABLES:
        expected = scenario.changes.get(table, [])
        assert len(changed[table]) == len(expected), (table, changed[table])
        for row, want in zip(changed[table], expected, strict=True):
            assert {k: row.get(k) for k in want} == want, (table, row)

    settled = _ledger()
    assert handle_event(pk) is None  # already handled: a second run does nothing
    assert _ledger() == settled
