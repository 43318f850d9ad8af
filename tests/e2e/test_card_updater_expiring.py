"""The daily scan of expiring cards, end to end: Postgres, Redis, a Celery worker and
localstripe, with the sweeper driven by the test's clock.

A default card that expires before its subscription's next renewal is asked about
once per renewal; a card reissued at the processor lands in the ledger before the
renewal is charged. A card that outlives the renewal is never asked about.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from dunning.card_updater import expiring
from dunning.db import session_scope
from dunning.ledger import apply
from dunning.scheduler import sweeper
from tests.support import sandbox
from tests.support.ledger import rows, scalar, wait_until

SOON = (12, 2026)  # expires at the end of this month, before the monthly renewal
LATER = (12, 2031)


def _ledger_from_sandbox(sdk: Any, customer_id: str, subscription_id: str) -> None:
    """What the webhooks would have told the ledger: the customer, card, subscription."""
    version = int(time.time())
    customer = sdk.v1.customers.retrieve(customer_id).to_dict()
    subscription = sdk.v1.subscriptions.retrieve(subscription_id).to_dict()
    card_id = customer["invoice_settings"]["default_payment_method"]
    card = sdk.v1.payment_methods.retrieve(card_id).to_dict()
    with session_scope() as session:
        apply.apply_customer(session, customer, version)
        apply.apply_payment_method(session, card, version)
        apply.apply_subscription(session, subscription, version)


def _run_due(now: datetime) -> None:
    sweeper.sweep(now)
    wait_until(
        lambda: (
            scalar(
                "SELECT count(*) FROM scheduled_actions WHERE status IN ('pending', 'claimed',"
                " 'running') AND kind = 'check_card' AND due_at <= :n",
                n=now,
            )
            == 0
        ),
        what="due checks performed",
    )


def _requests() -> list[dict[str, Any]]:
    return rows(
        "SELECT case_id, reason, result, payment_method_id, new_payment_method_id"
        " FROM card_updater_requests ORDER BY id"
    )


def test_a_card_expiring_before_the_renewal_is_refreshed_once_before_it(
    processor: str, clean_db: None, celery_worker: object
) -> None:
    sdk = sandbox.client(processor)
    customer_id, subscription_id = sandbox.subscribe(sdk, sandbox.GOOD_CARD, expires=SOON)
    _ledger_from_sandbox(sdk, customer_id, subscription_id)
    old_card = scalar(
        "SELECT default_payment_method_id FROM customers WHERE id = :c", c=customer_id
    )
    now = datetime.now(UTC)
    with session_scope() as session:
        assert expiring.plan_checks(session, now) == 1
    [planned] = rows("SELECT dedupe_key, case_id, payload FROM scheduled_actions")
    renewal = scalar(
        "SELECT current_period_end FROM subscriptions WHERE id = :s", s=subscription_id
    )
    assert planned["dedupe_key"] == expiring.expiring_key(old_card, renewal)
    assert planned["case_id"] is None

    new_card = sandbox.add_card(sdk, customer_id, sandbox.GOOD_CARD, LATER)  # reissued
    _run_due(now)
    assert _requests() == [
        {
            "case_id": None,
            "reason": "expiring",
            "result": "new_card",
            "payment_method_id": old_card,
            "new_payment_method_id": new_card,
        }
    ]
    assert (
        scalar("SELECT default_payment_method_id FROM customers WHERE id = :c", c=customer_id)
        == new_card
    )
    # The next scans find nothing left to ask: the new card outlives the renewal.
    with session_scope() as session:
        assert expiring.plan_checks(session, now) == 0
    assert scalar("SELECT count(*) FROM scheduled_actions") == 1


def test_a_repeated_scan_asks_once_per_card_and_renewal(
    processor: str, clean_db: None, celery_worker: object
) -> None:
    sdk = sandbox.client(processor)
    customer_id, subscription_id = sandbox.subscribe(sdk, sandbox.GOOD_CARD, expires=SOON)
    _ledger_from_sandbox(sdk, customer_id, subscription_id)
    now = datetime.now(UTC)
    with session_scope() as session:
        expiring.plan_checks(session, now)
    _run_due(now)
    with session_scope() as session:
        expiring.plan_checks(session, now)  # the card is unchanged: still expiring
    _run_due(now)
    assert [r["result"] for r in _requests()] == ["unchanged"]
    assert scalar("SELECT status FROM scheduled_actions") == "done"


def test_a_card_that_outlives_the_renewal_is_not_asked_about(
    processor: str, clean_db: None, celery_worker: object
) -> None:
    sdk = sandbox.client(processor)
    customer_id, subscription_id = sandbox.subscribe(sdk, sandbox.GOOD_CARD, expires=LATER)
    _ledger_from_sandbox(sdk, customer_id, subscription_id)
    with session_scope() as session:
        assert expiring.plan_checks(session, datetime.now(UTC)) == 0
