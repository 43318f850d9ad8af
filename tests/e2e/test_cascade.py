"""Backup cards end to end: Postgres, Redis, a Celery worker and localstripe behind the
recording proxy (tests/support/stripe_recorder.py: localstripe charges only a
customer's default card and reports no decline codes or card fingerprints)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from dunning.db import session_scope
from dunning.events.reconcile import reconcile
from dunning.ledger import apply
from dunning.policy.activation import DEFAULT_POLICY_FILE, activate
from dunning.policy.network_rules import CardContext
from dunning.policy.records import Attempt
from dunning.policy.store import apply_policy
from dunning.processors.stripe_adapter import StripeAdapter
from dunning.scheduler import sweeper
from tests.support import sandbox
from tests.support.ledger import all_handled, rows, scalar, wait_until
from tests.support.stripe_recorder import StripeRecorder, serving_the_service


@pytest.fixture
def stripe(processor: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeRecorder]:
    """The service (and its worker) talk to localstripe through the recording proxy."""
    with serving_the_service(processor, monkeypatch) as recorder:
        yield recorder


def _cascading_policy() -> None:
    """The default policy, with hard declines cascading to a backup card, made active."""
    text = DEFAULT_POLICY_FILE.read_text()
    text = text.replace('name = "default"', 'name = "cascading"').replace(
        "version = 2", "version = 1"
    )
    hard = 'action = "wait_for_card"\n\n[classes.card_data]'
    assert hard in text
    text = text.replace(hard, 'action = "wait_for_card"\ncascade = true\n\n[classes.card_data]')
    with session_scope() as session:
        apply_policy(session, text, "tests")
        activate(session, "cascading", 1, "tests")


def _attached(sdk: object, customer_id: str, number: str) -> str:
    """A card attached to the customer, not made the default."""
    pm = sdk.v1.payment_methods.create(  # type: ignore[attr-defined]
        params={
            "type": "card",
            "card": {"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"},
        }
    )
    sdk.v1.payment_methods.attach(pm.id, params={"customer": customer_id})  # type: ignore[attr-defined]
    return str(pm.id)


def test_a_hard_decline_cascades_to_the_backup_card_which_pays(
    stripe: StripeRecorder, clean_db: None, celery_worker: object
) -> None:
    _cascading_policy()
    sdk = sandbox.client(stripe.url)
    adapter = StripeAdapter(sandbox.API_KEY, stripe.url)
    customer_id, _ = sandbox.subscribe(sdk, sandbox.FAILING_CARD)
    customer = sdk.v1.customers.retrieve(customer_id)
    first = str(customer.invoice_settings.default_payment_method)  # type: ignore[union-attr]
    stripe.declines[first] = "stolen_card"  # a hard decline: it binds the card
    time.sleep(1.1)  # the backup is the most recently updated card on file
    backup = _attached(sdk, customer_id, sandbox.GOOD_CARD)
    version = int(time.time())
    with session_scope() as session:  # what customer.updated and payment_method.attached do
        apply.apply_customer(session, adapter.customer(customer_id), version)
        apply.apply_payment_method(session, adapter.payment_method(first), version)
        apply.apply_payment_method(session, adapter.payment_method(backup), version + 1)
    reconcile(adapter)
    wait_until(all_handled, what="reconciled events applied")

    [case] = rows("SELECT id, state FROM dunning_cases WHERE customer_id = :c", c=customer_id)
    assert case["state"] == "open"
    [action] = rows(
        "SELECT kind, due_at, payload FROM scheduled_actions"
        " WHERE case_id = :c AND status = 'pending' AND kind = 'retry_charge'",
        c=case["id"],
    )
    assert action["payload"]["payment_method"] == backup
    [decision] = rows(
        "SELECT kind, reason FROM case_decisions WHERE case_id = :c ORDER BY id DESC LIMIT 1",
        c=case["id"],
    )
    assert decision["kind"] == "retry" and "cascade to a backup card" in decision["reason"]
    assert f"({backup})" in decision["reason"]  # the timeline names the card

    due: datetime = action["due_at"]
    assert sweeper.sweep(due) >= 1
    wait_until(
        lambda: (
            scalar("SELECT state FROM dunning_cases WHERE id = :c", c=case["id"]) == "recovered"
        ),
        what="the cascade retry paid",
    )
    [pay] = stripe.posts(r"/v1/invoices/in_\w+/pay$")
    assert pay.form == {"payment_method": backup}
    assert pay.idempotency_key == f"dunning-case-{case['id']}-attempt-2"
    [invoice] = sdk.v1.invoices.list(params={"customer": customer_id}).data
    assert invoice.status == "paid"
    [closed] = rows("SELECT recovered_by FROM dunning_cases WHERE id = :c", c=case["id"])
    assert closed == {"recovered_by": "retry"}

    attempts = rows(
        "SELECT attempted_at, amount, currency, outcome, decline_code, card_fingerprint,"
        " payment_method_id FROM charge_attempts WHERE invoice_id = :i ORDER BY attempted_at",
        i=invoice.id,
    )
    assert [(a["outcome"], a["decline_code"], a["payment_method_id"]) for a in attempts] == [
        ("failed", "stolen_card", first),
        ("succeeded", None, backup),
    ]
    fp_first, fp_backup = (a["card_fingerprint"] for a in attempts)
    assert fp_first and fp_backup and fp_first != fp_backup
    history = [
        Attempt(
            at=a["attempted_at"],
            amount=a["amount"] or 0,
            currency=a["currency"] or "usd",
            succeeded=a["outcome"] == "succeeded",
            decline_code=a["decline_code"],
            card_fingerprint=a["card_fingerprint"],
        )
        for a in attempts
    ]
    # The first card's network budget: its own decline only, the cascade charge not counted.
    on_first = CardContext.build(history, card_fingerprint=fp_first)
    assert [a.card_fingerprint for a in on_first.counted] == [fp_first]
    assert sweeper.sweep(due + timedelta(days=40)) == 0  # nothing more to do
