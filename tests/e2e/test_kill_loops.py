"""Kill loops: real ``dunning worker`` processes SIGKILLed at random moments while they
charge invoices at localstripe and send emails to an SMTP server (issue 14).

The test owns the clock the sweeper runs at. A round sweeps (in small batches, so both
workers get task messages), waits a random moment, SIGKILLs one of the two workers (its
whole process tree) and starts it again, waits until the live workers have nothing
left to do, then moves the clock past the lease so the next sweep reclaims what the
dead worker held; when nothing is left, the clock jumps to the next due action (the
next retry, the next reminder). Effects are counted where they land: charges at
localstripe, messages at the SMTP server. Each test prints its figures; ``KILL_SEED``
replays a run's random choices, ``KILL_VERBOSE=1`` prints every round:

    KILL_SEED=123 .venv/bin/python -m pytest -q -s -p no:cacheprovider \
        tests/e2e/test_kill_loops.py
"""

from __future__ import annotations

import os
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import stripe

from dunning.events.reconcile import reconcile
from dunning.processors.stripe_adapter import StripeAdapter
from dunning.scheduler import runner, sweeper
from tests.support import sandbox
from tests.support.ledger import all_handled, rows, scalar, wait_until
from tests.support.servers import ThrowawayRedis
from tests.support.slow_smtp import SlowCatcher, slow_smtp
from tests.support.smtp import environment
from tests.support.workers import Workers, broker, wait_quiet

pytestmark = pytest.mark.timeout(180)

STEP = sweeper.LEASE + timedelta(seconds=1)  # past the lease: dead dispatches are reclaimed
BATCH = 3  # actions per sweep batch (one task message each)
SMTP_DELAY = 0.3  # the SMTP server keeps each message this long before it answers 250


@pytest.fixture
def empty_broker(redis_server: ThrowawayRedis) -> Iterator[None]:
    """No message of an earlier test reaches these workers, and none that a dead worker
    held (unacknowledged, redelivered an hour later) reaches a later test."""
    broker(redis_server.sock).flushdb()
    yield
    broker(redis_server.sock).flushdb()


def _seed() -> int:
    seed = int(os.environ.get("KILL_SEED") or time.time_ns() % 1_000_000)
    print(f"\nKILL_SEED={seed}")
    return seed


def _worker_env() -> dict[str, str]:
    """This process's settings (database, Redis, localstripe, SMTP, email hours), one
    pool process per worker: two workers of one process each on a machine of two cores."""
    return {**os.environ, "DUNNING_WORKER_CONCURRENCY": "1"}


def _leased() -> int:
    return int(
        scalar("SELECT count(*) FROM scheduled_actions WHERE status IN ('claimed', 'running')")
    )


def _due(clock: datetime) -> int:
    return int(
        scalar(
            "SELECT count(*) FROM scheduled_actions WHERE status = 'pending' AND due_at <= :t",
            t=clock,
        )
    )


def _next_due() -> datetime | None:
    found: datetime | None = scalar(
        "SELECT min(due_at) FROM scheduled_actions WHERE status = 'pending'"
    )
    return found


def _latest_due(key_like: str) -> datetime:
    """When the last of these actions is due (emails are due at whole minutes)."""
    due: datetime | None = scalar(
        "SELECT max(due_at) FROM scheduled_actions WHERE dedupe_key LIKE :k", k=key_like
    )
    assert due is not None, key_like
    return due


def _max_crashes() -> int:
    return int(
        scalar(
            "SELECT coalesce(max(crashes), 0) FROM scheduled_actions"
            " WHERE status IN ('claimed', 'running')"
        )
    )


class KillLoop:
    """Sweep at the test's clock, kill a worker at a random moment, reclaim, repeat."""

    def __init__(
        self,
        workers: Workers,
        redis_server: ThrowawayRedis,
        rng: random.Random,
        clock: datetime,
        *,
        per_action: float,
        quiet: float,
        extra: Callable[[], object] | None = None,
        spare_last_dispatch: bool = False,
    ) -> None:
        self.workers = workers
        self.broker = broker(redis_server.sock)
        self.rng = rng
        self.clock = clock
        self.per_action = per_action  # about how long a worker takes per action
        self.quiet = quiet
        self.extra = extra
        # Emails: never kill while an action is one crash away from being abandoned
        # (that path, failed on the case, is tested in test_crash_recovery.py).
        self.spare_last_dispatch = spare_last_dispatch
        self.rounds = 0
        self.sent = 0
        self.aimed = 0

    def round(self, *, kill: bool, aim: Callable[[float], int | None] | None = None) -> int:
        """One sweep at the clock (moved past the lease first when dead dispatches were
        left behind), a kill while the actions run, and a wait until the live workers are
        done; returns how many actions the sweep dispatched.

        The kill comes at a random moment, or when ``aim`` (given that long to wait)
        names the worker to kill."""
        if _leased():
            self.clock += STEP
        # Small batches: a few task messages per sweep, so both workers have work.
        sent = sweeper.sweep(self.clock, batch=BATCH)
        self.rounds += 1
        self.sent += sent
        began = time.monotonic()
        note = ""
        if sent and kill:
            busy = self.per_action * sent / self.workers.count  # both work, in parallel
            window = min(busy + 0.3, 6.0)
            slot = aim(window) if aim else None
            if slot is None:
                time.sleep(self.rng.uniform(0.0, max(0.0, window - (time.monotonic() - began))))
            else:
                self.aimed += 1
            if not (self.spare_last_dispatch and _max_crashes() >= runner.MAX_DISPATCHES - 1):
                slot = self.workers.pick(self.rng) if slot is None else slot
                self.workers.kill_and_restart(slot)
                note = f", killed worker {slot} after {time.monotonic() - began:.2f} s"
        wait_quiet(self.broker, self.quiet, timeout=45, extra=self.extra)
        if os.environ.get("KILL_VERBOSE"):
            print(
                f"round {self.rounds}: {sent} sent{note}, quiet after"
                f" {time.monotonic() - began:.2f} s, {_leased()} left with dead workers"
            )
        return sent

    def finish(self, deadline: float) -> None:
        """No more kills: run what is due at the clock and what the dead left behind."""
        while _leased() or _due(self.clock):
            assert time.monotonic() < deadline, "actions still unsettled at the deadline"
            self.round(kill=False)


def _start_cases(processor: str, customers: list[str]) -> None:
    """The reconciler finds the failed first charges; the workers open the cases."""
    reconcile(StripeAdapter(sandbox.API_KEY, processor))
    wait_until(all_handled, timeout=60, what="reconciled events applied by the workers")
    wait_until(
        lambda: scalar("SELECT count(*) FROM dunning_cases") == len(customers),
        what="every case opened",
    )


def test_killed_workers_never_charge_an_attempt_twice(
    processor: str,
    clean_db: None,
    redis_server: ThrowawayRedis,
    empty_broker: None,
    tmp_path: Path,
) -> None:
    began = time.monotonic()
    rng = random.Random(_seed())
    sdk = sandbox.client(processor)
    customers: list[str] = []
    good: set[str] = set()
    with Workers(_worker_env(), tmp_path) as workers:  # they start while the sandbox fills
        for index in range(12):
            customer, _ = sandbox.subscribe(sdk, sandbox.FAILING_CARD)
            customers.append(customer)
            if index % 2 == 0:  # its retry pays
                sandbox.add_card(sdk, customer, sandbox.GOOD_CARD)
                good.add(customer)
        _start_cases(processor, customers)
        first = _next_due()
        assert first is not None
        loop = KillLoop(workers, redis_server, rng, first, per_action=0.15, quiet=1.0)
        horizon = first + timedelta(days=40)
        kill_until = began + 55
        while time.monotonic() < kill_until:
            if not _leased() and not _due(loop.clock):
                upcoming = _next_due()
                if upcoming is None or upcoming > horizon:
                    break
                # The next wave: every retry due within the half hour runs together.
                loop.clock = max(loop.clock, upcoming + timedelta(minutes=30))
            loop.round(kill=True)
        loop.finish(deadline=began + 150)
        log = workers.log_text()
        kills = workers.kills
    elapsed = time.monotonic() - began

    # No action left claimed or running; none failed without saying why.
    assert _leased() == 0
    actions = rows("SELECT id, case_id, kind, status, result, dedupe_key FROM scheduled_actions")
    statuses = Counter(a["status"] for a in actions)
    assert set(statuses) <= {"pending", "done", "canceled", "failed"}, statuses
    for action in actions:
        if action["status"] == "failed":
            assert str(action["result"]).startswith("failed: "), action
    abandoned = [a for a in actions if "kept dying" in str(a["result"])]
    for action in abandoned:  # re-planned later, with an error in the worker's log
        assert action["kind"] != "send_email" and action["status"] == "pending", action
        assert re.search(rf"action {action['dedupe_key']} \(\w+\) died in \d+ dispatches", log)
    assert "failed in dispatch" not in log, log

    charged = attempts = recovered_after_crash = 0
    for customer in customers:
        [case] = rows(
            "SELECT id, state, recovered_by FROM dunning_cases WHERE customer_id = :c",
            c=customer,
        )
        retries = rows(
            "SELECT status, result FROM scheduled_actions"
            " WHERE case_id = :c AND kind = 'retry_charge'",
            c=case["id"],
        )
        ran = [r for r in retries if r["status"] == "done"]
        at_stripe = sandbox.charges_of(sdk, customer)
        ledger = rows(
            "SELECT charge_id, attempt_number, outcome, triggered_by FROM charge_attempts"
            " WHERE customer_id = :c",
            c=customer,
        )
        # The first charge (the processor's) and one per retry that ran: never two.
        assert len(at_stripe) == 1 + len(ran), (customer, at_stripe, retries)
        assert sorted(str(c["id"]) for c in at_stripe) == sorted(
            str(a["charge_id"]) for a in ledger
        )
        failed = sorted(a["attempt_number"] for a in ledger if a["outcome"] == "failed")
        assert failed == list(range(1, len(failed) + 1)), ledger  # failures numbered once
        assert len(ledger) - len(failed) <= 1, ledger  # and at most one charge that paid
        assert [a["triggered_by"] for a in ledger].count("service") == len(ran)
        if case["state"] == "recovered":  # issue 14, item 8: our retry made the charge
            assert case["recovered_by"] == "retry", case
        if customer in good and ran:
            assert case["state"] == "recovered", case
        charged += len(at_stripe)
        attempts += len(ran)
        recovered_after_crash += sum("after a crash" in str(r["result"]) for r in ran)
    recovered = int(scalar("SELECT count(*) FROM dunning_cases WHERE state = 'recovered'"))
    print(
        f"\ncharges: {len(customers)} cases ({len(good)} with a good card), {loop.rounds} sweeps,"
        f" {loop.sent} dispatches, {kills} workers SIGKILLed; {charged} charges at localstripe"
        f" = {len(customers)} first + {attempts} retries, each attempt charged once;"
        f" {recovered_after_crash} charges made by a killed worker and recorded by its rerun;"
        f" {len(abandoned)} actions re-planned after {runner.MAX_DISPATCHES} dead dispatches;"
        f" {recovered} cases recovered (by our retry); statuses {dict(statuses)};"
        f" clock {loop.clock - first} past the first retry; {elapsed:.0f} s"
    )


def _copies_by_notification(catcher: SlowCatcher) -> dict[int, list[EmailMessage]]:
    """The messages the SMTP server got, by the notification each says it is."""
    with catcher.lock:
        messages = list(catcher.messages)
    by_note: dict[int, list[EmailMessage]] = {}
    for message in messages:
        by_note.setdefault(int(str(message["X-Dunning-Notification"])), []).append(message)
    return by_note


def _pay_invoices(sdk: stripe.StripeClient, processor: str, customers: list[str]) -> None:
    """The customers pay with a new card; the reconciler closes their cases."""
    for customer in customers:
        sandbox.add_card(sdk, customer, sandbox.GOOD_CARD)
        [invoice] = sdk.v1.invoices.list(params={"customer": customer}).data
        sdk.v1.invoices.pay(invoice.id)
    reconcile(StripeAdapter(sandbox.API_KEY, processor))
    wait_until(all_handled, timeout=30, what="paid invoices applied")
    wait_until(
        lambda: all(
            scalar("SELECT state FROM dunning_cases WHERE customer_id = :c", c=c) == "recovered"
            for c in customers
        ),
        what="their cases recovered",
    )


def _after_data(
    catcher: SlowCatcher, workers: Workers, port: int, rng: random.Random
) -> Callable[[float], int | None]:
    """Aim a kill at the moment after DATA: the server has the message and has not
    answered yet. Returns the worker holding that SMTP connection."""

    def aim(window: float) -> int | None:
        with catcher.lock:
            target = len(catcher.messages) + rng.randint(1, 3)
        deadline = time.monotonic() + window + 2.0
        while time.monotonic() < deadline:
            with catcher.lock:
                arrived = len(catcher.messages)
            if arrived >= target and (senders := workers.connected_to(port)):
                return rng.choice(senders)
            time.sleep(0.01)
        return None

    return aim


def _delivered_notice_held_by_the_dead(catcher: SlowCatcher) -> bool:
    """A failure notice reached the server, but the worker that sent it died before it
    recorded the send (its action still claimed or running)."""
    with catcher.lock:
        delivered = {int(str(m["X-Dunning-Notification"])) for m in catcher.messages}
    held = rows(
        "SELECT n.id FROM notifications n JOIN scheduled_actions a"
        " ON a.dedupe_key = n.dedupe_key WHERE a.dedupe_key LIKE '%:email:0'"
        " AND a.status IN ('claimed', 'running')"
    )
    return any(r["id"] in delivered for r in held)


def _notice_held_by_the_dead() -> list[str]:
    """Customers whose failure notice a killed worker held (claimed or mid-send)."""
    return [
        str(r["customer_id"])
        for r in rows(
            "SELECT c.customer_id FROM scheduled_actions a JOIN dunning_cases c"
            " ON c.id = a.case_id WHERE a.dedupe_key LIKE '%:email:0'"
            " AND a.status IN ('claimed', 'running')"
        )
    ]


def test_killed_workers_lose_no_email(
    processor: str,
    clean_db: None,
    redis_server: ThrowawayRedis,
    empty_broker: None,
    tmp_path: Path,
) -> None:
    """The failure notices go out under kills; customers whose notice a dead worker
    still holds pay at once (issue 14, item 10); the others get their reminders (days
    3 to 14) under kills, then pay; every thank-you goes out under kills too."""
    began = time.monotonic()
    rng = random.Random(_seed())
    sdk = sandbox.client(processor)
    hours = {"DUNNING_EMAIL_HOURS_START": "0", "DUNNING_EMAIL_HOURS_END": "24"}  # all due now
    with (
        slow_smtp(delay=SMTP_DELAY) as (catcher, smtp_settings),
        environment(**hours),
        Workers(_worker_env(), tmp_path) as workers,
    ):
        customers = [sandbox.subscribe(sdk, sandbox.FAILING_CARD)[0] for _ in range(12)]
        _start_cases(processor, customers)
        first = _latest_due("%:email:0")
        loop = KillLoop(
            workers,
            redis_server,
            rng,
            first,
            per_action=SMTP_DELAY + 0.15,
            quiet=SMTP_DELAY + 1.0,
            extra=lambda: len(catcher.messages),
            spare_last_dispatch=True,
        )
        # 1. The failure notices, the kills aimed after DATA, until a worker dies after
        # the server got a notice and before it could record it (or all went out).
        aim = _after_data(catcher, workers, int(smtp_settings["DUNNING_SMTP_PORT"]), rng)
        while time.monotonic() < began + 30:
            loop.round(kill=True, aim=aim)
            if _delivered_notice_held_by_the_dead(catcher) or not (_leased() or _due(loop.clock)):
                break
        # 2. Those customers pay now, before their notice's fate is known, and one more.
        held = _notice_held_by_the_dead()
        others = [c for c in customers if c not in held]
        early = held + rng.sample(others, min(1, len(others)))
        _pay_invoices(sdk, processor, early)
        loop.clock = max(loop.clock, _latest_due("%:email:recovered"))
        # 3. Thank-yous, what the dead held, then the others' reminders and retries.
        horizon = first + timedelta(days=15)
        while time.monotonic() < began + 45:
            if not _leased() and not _due(loop.clock):
                upcoming = _next_due()
                if upcoming is None or upcoming > horizon:
                    break
                loop.clock = max(loop.clock, upcoming + timedelta(minutes=30))
            loop.round(kill=True)
        # 4. Everyone else pays; their thank-yous under kills.
        loop.finish(deadline=began + 120)
        _pay_invoices(sdk, processor, [c for c in customers if c not in early])
        while time.monotonic() < began + 65 and (_leased() or _due(loop.clock)):
            loop.round(kill=True)
        loop.finish(deadline=began + 150)
        kills = workers.kills
    elapsed = time.monotonic() - began

    assert _leased() == 0
    actions = rows("SELECT kind, status, result, dedupe_key FROM scheduled_actions")
    assert {a["status"] for a in actions} <= {"done", "canceled"}, actions
    notes = {
        n["id"]: n
        for n in rows(
            "SELECT id, dedupe_key, template, recipient, customer_id, status, details"
            " FROM notifications"
        )
    }
    by_note = _copies_by_notification(catcher)
    arrived: dict[int, int] = {}  # notification id -> copies received
    for note_id, copies in by_note.items():
        note = notes[note_id]
        # Every copy of an email carries its one Message-ID, and goes to its recipient.
        assert len({str(m["Message-ID"]) for m in copies}) == 1, note
        assert {str(m["To"]) for m in copies} == {note["recipient"]}, note
        # Delivered, so recorded as sent, or as "unknown" when the case no longer needed
        # it by the time the dead dispatch was reclaimed: never left "claimed".
        assert note["status"] in ("sent", "unknown"), note
        arrived[note_id] = len(copies)
    message_ids = {str(copies[0]["Message-ID"]) for copies in by_note.values()}
    assert len(message_ids) == len(by_note)  # and no two emails share one
    # Every email recorded as sent arrived (owed and delivered at least once) ...
    sent = [n for n in notes.values() if n["status"] == "sent"]
    assert all(n["id"] in arrived for n in sent), [n for n in sent if n["id"] not in arrived]
    for action in actions:
        if action["kind"] == "send_email" and action["status"] == "done":
            assert action["result"] == "sent", action
    # ... and so did the failure notice of everyone whose case was open when it was due.
    by_template: dict[str, set[str]] = {}
    for n in notes.values():
        if n["id"] in arrived:
            by_template.setdefault(str(n["template"]), set()).add(str(n["customer_id"]))
    told = set().union(*(c for t, c in by_template.items() if t != "payment_recovered"))
    thanked = by_template.get("payment_recovered", set())
    assert set(customers) - set(early) <= by_template.get("payment_failed", set())
    # Issue 14, item 10: whoever heard of the failure hears that it is fixed.
    assert told <= thanked, told - thanked
    # Every duplicate is a resend after an unknown outcome, and counted as one.
    duplicates = sum(arrived.values()) - len(arrived)
    resends = sum(int(n["details"].get("unknown_outcome_resends", 0)) for n in notes.values())
    assert duplicates <= resends
    unknown = sum(1 for n in notes.values() if n["status"] == "unknown")
    held_told = len(set(held) & told)
    rate = duplicates / len(arrived)
    print(
        f"\nemails: {len(customers)} customers, {loop.rounds} sweeps, {loop.sent} dispatches,"
        f" {kills} workers SIGKILLed ({loop.aimed} of them just after DATA, the others at"
        f" random moments), SMTP answering {SMTP_DELAY} s after DATA;"
        f" {sum(arrived.values())} messages for {len(arrived)} emails:"
        f" {duplicates} duplicates (same Message-ID), duplicate rate {rate:.1%};"
        f" {resends} resends after an unknown outcome, {unknown} notifications 'unknown';"
        f" {len(told)} customers told of the failure, all thanked ({len(thanked)} thank-yous);"
        f" {len(held)} paid while a dead worker held their notice, {held_told} of those"
        f" notices had arrived; {elapsed:.0f} s"
    )
