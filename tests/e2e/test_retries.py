"""Retries end to end: Postgres, Redis, a Celery worker and localstripe, with the
sweeper driven by a clock the test controls instead of days of sleeping."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dunning import actions
from dunning.cases import service as cases
from dunning.db import session_scope
from dunning.events.reconcile import reconcile
from dunning.ledger import apply
from dunning.processors.stripe_adapter import StripeAdapter
from dunning.scheduler import sweeper
from tests.support import sandbox
from tests.support.ledger import all_handled, rows, scalar, wait_until


def _open_case(base: str, card: str = sandbox.FAILING_CARD) -> tuple[str, str, dict[str, object]]:
    """A subscription whose first charge failed, found by the reconciler; its case row."""
    sdk = sandbox.client(base)
    customer_id, sub_id = sandbox.subscribe(sdk, card)
    reconcile(StripeAdapter(sandbox.API_KEY, base))
    wait_until(all_handled, what="reconciled events applied")
    [case] = rows("SELECT id, state FROM dunning_cases WHERE customer_id = :c", c=customer_id)
    return customer_id, sub_id, case


def _pending(case_id: object) -> list[dict[str, object]]:
    return rows(
        "SELECT id, kind, due_at, dedupe_key, payload FROM scheduled_actions"
        " WHERE case_id = :c AND status = 'pending' ORDER BY due_at",
        c=case_id,
    )


def _sweep_until_done(now: datetime, case_id: object) -> None:
    assert sweeper.sweep(now) >= 1
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


def test_retries_follow_the_plan_and_a_new_card_recovers_the_invoice(
    processor: str, clean_db: None, celery_worker: object
) -> None:
    sdk = sandbox.client(processor)
    customer_id, _, case = _open_case(processor)
    assert case["state"] == "open"
    [first] = _pending(case["id"])
    assert first["kind"] == "retry_charge" and first["dedupe_key"] == f"case:{case['id']}:retry:2"
    local = first["due_at"].astimezone(ZoneInfo("America/New_York"))  # type: ignore[union-attr]
    assert 9 <= local.hour < 18 and local.weekday() < 5  # the default policy's window
    [decision] = rows(
        "SELECT kind, reason, attempt_number FROM case_decisions WHERE case_id = :c", c=case["id"]
    )
    assert decision["kind"] == "retry" and decision["attempt_number"] == 2 and decision["reason"]

    _sweep_until_done(first["due_at"], case["id"])  # type: ignore[arg-type]
    assert len(sandbox.charges_of(sdk, customer_id)) == 2  # the original one and our retry
    attempts = rows(
        "SELECT attempt_number, outcome, triggered_by FROM charge_attempts"
        " WHERE customer_id = :c ORDER BY attempt_number",
        c=customer_id,
    )
    assert attempts == [
        {"attempt_number": 1, "outcome": "failed", "triggered_by": "processor"},
        {"attempt_number": 2, "outcome": "failed", "triggered_by": "service"},
    ]
    [second] = _pending(case["id"])
    assert second["dedupe_key"] == f"case:{case['id']}:retry:3"
    assert second["due_at"] > first["due_at"]  # type: ignore[operator]

    sandbox.add_card(sdk, customer_id, sandbox.GOOD_CARD)
    _sweep_until_done(second["due_at"], case["id"])  # type: ignore[arg-type]
    [closed] = rows(
        "SELECT state, recovered_by, recovered_amount FROM dunning_cases WHERE id = :c",
        c=case["id"],
    )
    assert closed == {"state": "recovered", "recovered_by": "retry", "recovered_amount": 4900}
    [invoice] = sdk.v1.invoices.list(params={"customer": customer_id}).data
    assert invoice.status == "paid"
    assert _pending(case["id"]) == []


def test_two_workers_on_the_same_due_action_charge_once(
    processor: str, clean_db: None, celery_worker: object
) -> None:
    sdk = sandbox.client(processor)
    customer_id, _, case = _open_case(processor)
    [action] = _pending(case["id"])
    now = action["due_at"]
    with session_scope() as session:
        [(action_id, dispatch)] = sweeper.claim(session, now, 10)  # type: ignore[arg-type]
    adapter = StripeAdapter(sandbox.API_KEY, processor)
    outcomes: list[str] = []
    workers = [
        threading.Thread(
            target=lambda: outcomes.append(actions.run_action(adapter, action_id, dispatch, now))  # type: ignore[arg-type]
        )
        for _ in range(2)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    # The second is refused while the first runs (its dispatch already started) or, if
    # it came late, after the first finished (the action is no longer leased).
    declined, refused = sorted(outcomes)
    assert declined == "declined"
    assert refused in ("skipped: stale or duplicate dispatch", "skipped: not leased")
    assert len(sandbox.charges_of(sdk, customer_id)) == 2  # original + exactly one retry


def test_a_canceled_subscription_gets_no_further_attempts(
    processor: str, clean_db: None, celery_worker: object
) -> None:
    sdk = sandbox.client(processor)
    adapter = StripeAdapter(sandbox.API_KEY, processor)
    customer_id, sub_id, case = _open_case(processor)
    assert _pending(case["id"])
    sdk.v1.subscriptions.cancel(sub_id)
    with session_scope() as session:  # what the customer.subscription.deleted webhook does
        apply.apply_subscription(
            session, adapter.subscription(sub_id), int(datetime.now(UTC).timestamp())
        )
        cases.on_subscription_canceled(session, sub_id)
    [closed] = rows("SELECT state FROM dunning_cases WHERE id = :c", c=case["id"])
    assert closed == {"state": "canceled"}
    assert _pending(case["id"]) == []
    assert sweeper.sweep(datetime.now(UTC) + timedelta(days=60)) == 0
    assert len(sandbox.charges_of(sdk, customer_id)) == 1
    assert rows(
        "SELECT DISTINCT status FROM scheduled_actions WHERE case_id = :c", c=case["id"]
    ) == [{"status": "canceled"}]


def test_a_worker_killed_mid_action_is_reclaimed_once_and_never_charges_twice(
    processor: str, clean_db: None, celery_worker: object
) -> None:
    import subprocess
    import sys

    from tests.support.stripe_events import REPO

    sdk = sandbox.client(processor)
    customer_id, _, case = _open_case(processor)
    [action] = _pending(case["id"])
    now: datetime = action["due_at"]  # type: ignore[assignment]
    with session_scope() as session:
        [(action_id, dispatch)] = sweeper.claim(session, now, 10)
    crashed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.crash_after_charge",
            str(action_id),
            str(dispatch),
            now.isoformat(),
            processor,
        ],
        cwd=REPO,
        check=False,
    )
    assert crashed.returncode == 9
    assert len(sandbox.charges_of(sdk, customer_id)) == 2  # the killed worker did charge
    [running] = rows("SELECT status, attempts FROM scheduled_actions WHERE id = :a", a=action_id)
    assert running == {"status": "running", "attempts": 1}

    assert sweeper.sweep(now + timedelta(minutes=1)) == 0  # the lease still holds
    assert sweeper.sweep(now + sweeper.LEASE + timedelta(seconds=1)) == 1  # reclaimed
    wait_until(
        lambda: scalar("SELECT status FROM scheduled_actions WHERE id = :a", a=action_id) == "done",
        what="reclaimed action done",
    )
    [done] = rows("SELECT attempts, result FROM scheduled_actions WHERE id = :a", a=action_id)
    assert done["attempts"] == 2 and "crash" in str(done["result"])
    assert len(sandbox.charges_of(sdk, customer_id)) == 2  # and nobody charged again
    outcomes = rows(
        "SELECT attempt_number, outcome, triggered_by FROM charge_attempts"
        " WHERE customer_id = :c ORDER BY attempt_number",
        c=customer_id,
    )
    assert [o["attempt_number"] for o in outcomes] == [1, 2]
    assert [p["dedupe_key"] for p in _pending(case["id"])] == [f"case:{case['id']}:retry:3"]


def test_a_worker_killed_after_a_paying_retry_credits_the_retry(
    processor: str, clean_db: None, celery_worker: object
) -> None:
    """The retry paid, its worker died before recording it, and the processor's own
    webhooks closed the case first: the rerun still records the charge as ours."""
    import subprocess
    import sys

    from tests.support.stripe_events import REPO

    sdk = sandbox.client(processor)
    customer_id, _, case = _open_case(processor)
    sandbox.add_card(sdk, customer_id, sandbox.GOOD_CARD)
    [action] = _pending(case["id"])
    now: datetime = action["due_at"]  # type: ignore[assignment]
    with session_scope() as session:
        [(action_id, dispatch)] = sweeper.claim(session, now, 10)
    crashed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.crash_after_charge",
            *(str(action_id), str(dispatch), now.isoformat(), processor),
        ],
        cwd=REPO,
        check=False,
    )
    assert crashed.returncode == 9
    reconcile(StripeAdapter(sandbox.API_KEY, processor))  # what the paid webhooks do
    wait_until(all_handled, what="the paid invoice applied")
    assert scalar("SELECT recovered_by FROM dunning_cases WHERE id = :c", c=case["id"]) == (
        "processor"
    )
    assert sweeper.sweep(now + sweeper.LEASE + timedelta(seconds=1)) == 1  # reclaimed
    wait_until(
        lambda: scalar("SELECT status FROM scheduled_actions WHERE id = :a", a=action_id) == "done",
        what="reclaimed action done",
    )
    [closed] = rows("SELECT state, recovered_by FROM dunning_cases WHERE id = :c", c=case["id"])
    assert closed == {"state": "recovered", "recovered_by": "retry"}
    assert len(sandbox.charges_of(sdk, customer_id)) == 2  # charged once by our retry
