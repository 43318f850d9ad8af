"""The card account updater end to end: Postgres, Redis, a Celery worker and
localstripe, with the sweeper driven by the test's clock.

A case whose card expires before its retry asks the updater before retrying: a card
refreshed at the processor is found, retried at once and pays (``recovered_by =
card_updater``); an unchanged card leaves the case on its schedule; a closed account
(a provider that says so) ends the blind retries.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dunning.card_updater.check import CheckCard
from dunning.card_updater.provider import Answer, CardQuery, Result
from dunning.db import session_scope
from dunning.events.reconcile import reconcile
from dunning.processors.stripe_adapter import StripeAdapter
from dunning.scheduler import runner, sweeper
from dunning.scheduler.models import ActionKind
from tests.support import sandbox
from tests.support.ledger import all_handled, rows, scalar, wait_until

EXPIRED = (1, 2024)  # localstripe still charges it (and declines: FAILING_CARD)


def _open_case(base: str) -> tuple[str, dict[str, Any]]:
    sdk = sandbox.client(base)
    customer_id, _ = sandbox.subscribe(sdk, sandbox.FAILING_CARD, expires=EXPIRED)
    reconcile(StripeAdapter(sandbox.API_KEY, base))
    wait_until(all_handled, what="reconciled events applied")
    [case] = rows("SELECT id, state FROM dunning_cases WHERE customer_id = :c", c=customer_id)
    _settle(case["id"], datetime.now(UTC))  # a first read of the card, if the ledger lacks it
    return customer_id, case


def _action(case_id: object, kind: str) -> dict[str, Any]:
    [found] = rows(
        "SELECT id, dedupe_key, due_at, status, result FROM scheduled_actions"
        " WHERE case_id = :c AND kind = :k AND status = 'pending'",
        c=case_id,
        k=kind,
    )
    return found


def _settle(case_id: object, now: datetime) -> None:
    sweeper.sweep(now)
    wait_until(
        lambda: (
            scalar(
                "SELECT count(*) FROM scheduled_actions WHERE case_id = :c"
                " AND status IN ('claimed', 'running')",
                c=case_id,
            )
            == 0
        ),
        what="due actions performed",
    )


def _requests(case_id: object) -> list[dict[str, Any]]:
    return rows(
        "SELECT reason, result, payment_method_id, new_payment_method_id, changes"
        " FROM card_updater_requests WHERE case_id = :c AND reason <> 'fetch' ORDER BY id",
        c=case_id,
    )


def test_a_card_refreshed_at_the_processor_is_found_before_the_retry_and_pays(
    processor: str, clean_db: None, celery_worker: object
) -> None:
    sdk = sandbox.client(processor)
    customer_id, case = _open_case(processor)
    retry = _action(case["id"], ActionKind.RETRY_CHARGE)
    check = _action(case["id"], ActionKind.CHECK_CARD)
    assert check["dedupe_key"] == f"case:{case['id']}:card-updater:before_retry:2"
    assert check["due_at"] < retry["due_at"]  # the card expires before the retry
    old_card = scalar(
        "SELECT default_payment_method_id FROM customers WHERE id = :c", c=customer_id
    )

    new_card = sandbox.add_card(sdk, customer_id, sandbox.GOOD_CARD)  # reissued at the bank
    _settle(case["id"], check["due_at"])
    [asked] = _requests(case["id"])
    assert asked["reason"] == "before_retry" and asked["result"] == "new_card"
    assert (asked["payment_method_id"], asked["new_payment_method_id"]) == (old_card, new_card)
    assert asked["changes"] == {"card": [f"{old_card} 0341", f"{new_card} 4242"]}

    # Re-planned for the new card: as soon as the policy's spacing allows (here, unmoved).
    moved = _action(case["id"], ActionKind.RETRY_CHARGE)
    assert moved["id"] == retry["id"] and moved["due_at"] <= retry["due_at"]
    _settle(case["id"], moved["due_at"])
    [paid] = rows("SELECT state, recovered_by FROM dunning_cases WHERE id = :c", c=case["id"])
    assert paid == {"state": "recovered", "recovered_by": "card_updater"}
    assert rows(
        "SELECT outcome, triggered_by FROM charge_attempts WHERE customer_id = :c"
        " ORDER BY attempted_at",
        c=customer_id,
    )[-1] == {"outcome": "succeeded", "triggered_by": "card_updater"}


def test_an_unchanged_card_leaves_the_case_on_its_schedule(
    processor: str, clean_db: None, celery_worker: object
) -> None:
    sdk = sandbox.client(processor)
    customer_id, case = _open_case(processor)
    retry = _action(case["id"], ActionKind.RETRY_CHARGE)
    check = _action(case["id"], ActionKind.CHECK_CARD)
    _settle(case["id"], check["due_at"])
    [asked] = _requests(case["id"])
    assert (asked["result"], asked["changes"]) == ("unchanged", {})
    after = _action(case["id"], ActionKind.RETRY_CHARGE)
    assert (after["id"], after["due_at"]) == (retry["id"], retry["due_at"])
    assert len(sandbox.charges_of(sdk, customer_id)) == 1  # no extra charge


class _Closed:
    """A provider whose issuer says the card's account is closed."""

    name = "test"
    transient: tuple[type[Exception], ...] = ()

    def ask(self, query: CardQuery) -> Answer:
        return Answer(Result.ACCOUNT_CLOSED)


def test_a_closed_account_ends_the_blind_retries_and_the_case_waits_for_a_new_card(
    processor: str, clean_db: None, celery_worker: object
) -> None:
    _, case = _open_case(processor)
    check = _action(case["id"], ActionKind.CHECK_CARD)
    with session_scope() as session:
        claimed = dict(sweeper.claim(session, check["due_at"], 100))
    done = runner.run(
        {ActionKind.CHECK_CARD: CheckCard(_Closed())},
        check["id"],
        claimed[check["id"]],
        check["due_at"],
    )
    assert done == "account_closed"
    [asked] = _requests(case["id"])
    assert asked["result"] == "account_closed"
    assert (
        scalar(
            "SELECT count(*) FROM scheduled_actions WHERE case_id = :c AND kind = 'retry_charge'"
            " AND status = 'pending'",
            c=case["id"],
        )
        == 0
    )
    end = _action(case["id"], ActionKind.END_ACTION)  # at the policy's deadline
    assert end["due_at"] > check["due_at"] + timedelta(days=7)
    [last] = rows(
        "SELECT kind, reason FROM case_decisions WHERE case_id = :c ORDER BY id DESC LIMIT 1",
        c=case["id"],
    )
    assert last["kind"] == "wait_for_card" and "account is closed" in last["reason"]
