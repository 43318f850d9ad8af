"""Ops actions do what they say: retry now charges now, pause and resume keep the plan,
and a paused case says so (against Postgres, localstripe and the real CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from dunning.cases import ops
from dunning.db import session_scope
from dunning.events.reconcile import reconcile
from dunning.processors.stripe_adapter import StripeAdapter
from dunning.scheduler import sweeper
from dunning.settings import RUN_ENV_FILE
from tests.support import sandbox
from tests.support.cases import case_row, fail_invoice, store
from tests.support.ledger import all_handled, rows, scalar, wait_until
from tests.support.smtp import Catcher
from tests.support.stripe_events import event

REPO = Path(__file__).resolve().parents[2]


def _open_case(base: str) -> tuple[str, dict[str, object]]:
    sdk = sandbox.client(base)
    customer_id, _ = sandbox.subscribe(sdk, sandbox.FAILING_CARD)
    reconcile(StripeAdapter(sandbox.API_KEY, base))
    wait_until(all_handled, what="reconciled events applied")
    [case] = rows("SELECT id, state FROM dunning_cases WHERE customer_id = :c", c=customer_id)
    return customer_id, case


def test_retry_now_makes_a_charge_attempt_at_once(
    processor: str, clean_db: None, celery_worker: object
) -> None:
    sdk = sandbox.client(processor)
    customer_id, case = _open_case(processor)
    [planned] = rows(
        "SELECT due_at FROM scheduled_actions WHERE case_id = :c AND status = 'pending'",
        c=case["id"],
    )
    now = datetime.now(UTC)
    assert planned["due_at"] > now + timedelta(hours=1)  # the policy's own retry is later
    with session_scope() as session:
        ops.retry_now(session, int(case["id"]), "tests", now)  # type: ignore[call-overload]
    assert sweeper.sweep(now + timedelta(seconds=1)) == 1
    wait_until(lambda: len(sandbox.charges_of(sdk, customer_id)) == 2, what="the retry charged")
    wait_until(
        lambda: (
            scalar("SELECT count(*) FROM charge_attempts WHERE customer_id = :c", c=customer_id)
            == 2
        ),
        what="the attempt recorded",
    )
    [action] = rows(
        "SELECT status, result FROM scheduled_actions WHERE case_id = :c"
        " AND payload->>'retry_now' = 'true'",
        c=case["id"],
    )
    assert action == {"status": "done", "result": "declined"}


def test_paused_cases_refuse_retry_now_and_say_so(clean_db: None) -> None:
    fail_invoice("in_paused", created=int(time.time()))
    case_id = int(case_row("in_paused")["id"])  # type: ignore[call-overload]
    with session_scope() as session:
        ops.pause(session, case_id, "tests")
    with session_scope() as session, pytest.raises(ops.CaseActionRefused, match="already paused"):
        ops.pause(session, case_id, "tests")
    with session_scope() as session, pytest.raises(ops.CaseActionRefused, match="paused"):
        ops.retry_now(session, case_id, "tests", datetime.now(UTC))
    shown = subprocess.run(
        [sys.executable, "-m", "dunning.cli", "cases", "show", str(case_id)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"case {case_id}: open (paused)" in shown.stdout
    with session_scope() as session:
        ops.resume(session, case_id, "tests", datetime.now(UTC))
    with session_scope() as session, pytest.raises(ops.CaseActionRefused, match="not paused"):
        ops.resume(session, case_id, "tests", datetime.now(UTC))


def _emails(case_id: int) -> set[str]:
    return {
        str(r["status"])
        for r in rows(
            "SELECT status FROM scheduled_actions WHERE case_id = :c AND kind = 'send_email'",
            c=case_id,
        )
    }


def test_pause_then_resume_from_another_terminal_plans_the_emails_again(
    clean_db: None, smtp: Catcher, tmp_path: Path
) -> None:
    """``dunning run`` shares its demo settings (the mail sink) with commands typed in
    another terminal, so resuming there plans the case's emails again."""
    fail_invoice("in_resume", created=int(time.time()))
    case_id = int(case_row("in_resume")["id"])  # type: ignore[call-overload]
    assert _emails(case_id) == {"pending"}
    smtp_settings = {k: v for k, v in os.environ.items() if k.startswith("DUNNING_SMTP_")}
    (tmp_path / RUN_ENV_FILE).write_text(
        "".join(f"{key}={value}\n" for key, value in smtp_settings.items())
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUNNING_SMTP_")}
    env["DUNNING_DATA_DIR"] = str(tmp_path)
    for command in ("pause", "resume"):
        done = subprocess.run(
            [sys.executable, "-m", "dunning.cli", "cases", command, str(case_id)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert _emails(case_id) == {"pending" if command == "resume" else "canceled"}


def test_a_case_opened_without_a_known_card_fetches_it_for_its_emails(
    processor: str, clean_db: None, celery_worker: object, smtp: Catcher
) -> None:
    """Only ``invoice.payment_failed`` came: no payment-method webhook, no card on the
    attempt. The case fetches the charged card, and the first email names it."""
    sdk = sandbox.client(processor)
    sandbox.subscribe(sdk, sandbox.FAILING_CARD)
    [invoice] = list(StripeAdapter(sandbox.API_KEY, processor).open_invoices())
    store(event("invoice.payment_failed", invoice, created=int(time.time())))
    wait_until(all_handled, what="the event applied by the worker")
    assert scalar("SELECT count(*) FROM payment_methods") == 0
    [fetch] = rows("SELECT status FROM scheduled_actions WHERE kind = 'fetch_card'")
    assert fetch == {"status": "pending"}

    now = datetime.now(UTC)
    sweeper.sweep(now)
    wait_until(
        lambda: scalar("SELECT status FROM scheduled_actions WHERE kind = 'fetch_card'") == "done",
        what="the card fetched",
    )
    [card] = rows("SELECT brand, last4 FROM payment_methods")
    assert card == {"brand": "visa", "last4": "0341"}
    # The first email goes at the customer's next allowed hour, which the fetched
    # customer's time zone may have moved.
    for _ in range(3):
        due = scalar("SELECT due_at FROM scheduled_actions WHERE dedupe_key LIKE '%:email:0'")
        sweeper.sweep(max(now, due) + timedelta(minutes=1))  # type: ignore[type-var]
        wait_until(
            lambda: (
                scalar("SELECT status FROM scheduled_actions WHERE dedupe_key LIKE '%:email:0'")
                in ("pending", "done")
            ),
            what="the email action settled",
        )
        if smtp.messages:
            break
    [message] = smtp.wait_for(1)
    assert "0341" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
