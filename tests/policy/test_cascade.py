"""Backup cards: a class rule with ``cascade`` retries on the next usable card on file,
and the network rules count per card (the declined card's budget is its own)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dunning.policy.activation import DEFAULT_POLICY_FILE
from dunning.policy.declines import DeclineClass
from dunning.policy.engine import Attempt, Card, DecisionKind, decide
from dunning.policy.models import EndAction, PauseBehavior, PolicyError, load_policy
from dunning.policy.network_rules import CardContext, guard
from dunning.policy.preview import simulate
from dunning.policy.records import Decision
from dunning.policy.schedule_view import timeline

from .factories import failed, make_policy, utc

EXAMPLE = DEFAULT_POLICY_FILE.parent / "keep_the_customer.toml"
CASCADE = {"classes": {"hard": {"action": "wait_for_card", "cascade": True}}}
MON = utc("2025-06-02T12:00")  # a Monday, inside the retry hours
DEFAULT = Card("pm_a", "fp_1", "visa", "4242", 12, 2030)
BACKUP = Card("pm_b", "fp_2", "mastercard", "4444", 12, 2030)
OLDER = Card("pm_c", "fp_3", "visa", "1111", 12, 2030)


def _decide(
    history: list[Attempt],
    cards: list[Card],
    policy: dict[str, Any] | None = None,
    now: datetime = MON,
) -> Decision:
    return decide(
        make_policy(CASCADE if policy is None else policy),
        history,
        now=now,
        time_zone="UTC",
        cards=cards,
    )


def test_a_hard_decline_cascades_to_the_next_card_in_order() -> None:
    d = _decide([failed(MON, "stolen_card")], [DEFAULT, BACKUP, OLDER])
    assert d.kind is DecisionKind.RETRY and d.card == BACKUP
    assert d.at is not None and d.at >= MON + timedelta(hours=1)  # min spacing
    assert "cascade to a backup card" in d.reason and "mastercard •••• 4444 (pm_b)" in d.reason


def test_without_cascade_the_policy_still_waits_for_a_new_card() -> None:
    d = _decide([failed(MON, "stolen_card")], [DEFAULT, BACKUP], policy={})
    assert d.kind is DecisionKind.WAIT_FOR_CARD and d.card is None


def test_expired_unknown_and_already_declined_cards_are_skipped() -> None:
    expired = Card("pm_x", "fp_x", "visa", "0005", 5, 2025)  # last chargeable on May 31
    unknown = Card("pm_u", None, "visa", "0006", 12, 2030)  # cannot tell it is another card
    history = [
        failed(MON - timedelta(days=2), "insufficient_funds", card_fingerprint="fp_3"),
        failed(MON, "stolen_card"),
    ]
    d = _decide(history, [DEFAULT, expired, unknown, OLDER, BACKUP])
    assert d.card == BACKUP  # fp_3 declined on this case already, fp_1 is bound
    none_left = _decide(history, [DEFAULT, expired, unknown, OLDER])
    assert none_left.kind is DecisionKind.WAIT_FOR_CARD
    assert "no usable backup card" in none_left.reason


def test_a_card_expiring_before_the_retry_date_is_skipped() -> None:
    # The retry can only land after the month ends (Friday 30th 17:30 + 1 h spacing:
    # the weekend, then Monday July 2nd): a June card is no use, a July card is.
    friday = utc("2025-06-30T17:30")
    june = Card("pm_j", "fp_j", "visa", "0630", 6, 2025)
    july = Card("pm_k", "fp_k", "visa", "0731", 7, 2025)
    d = _decide([failed(friday, "stolen_card")], [DEFAULT, june, july], now=friday)
    assert d.card == july and d.at is not None and d.at.month == 7


def test_the_next_retry_stays_on_the_backup_card_the_last_attempt_used() -> None:
    history = [
        failed(MON - timedelta(days=1), "stolen_card"),
        failed(MON, "insufficient_funds", card_fingerprint="fp_2", card_brand="mastercard"),
    ]
    d = _decide(history, [DEFAULT, BACKUP])
    assert d.kind is DecisionKind.RETRY and d.card == BACKUP
    # ...and a hard decline on the backup too leaves no card: wait for a new one.
    history[-1] = failed(MON, "lost_card", card_fingerprint="fp_2", card_brand="mastercard")
    assert _decide(history, [DEFAULT, BACKUP]).kind is DecisionKind.WAIT_FOR_CARD


def test_the_network_rules_count_per_card() -> None:
    """Ten Mastercard declines of card A in 24 h block A, not the backup B."""
    burst = [
        failed(MON - timedelta(hours=10 - h), "do_not_honor", card_brand="mastercard")
        for h in range(9)
    ]
    history = [*burst, failed(MON, "stolen_card", card_brand="mastercard")]
    on_a = CardContext.build(history)
    assert len(on_a.declines()) == 10
    on_b = CardContext.build(history, card_brand="mastercard", card_fingerprint="fp_2")
    assert on_b.declines() == [] and on_b.blocking == ()
    d = _decide(history, [DEFAULT, BACKUP], policy={**CASCADE, "limits": {"max_attempts": 20}})
    assert d.kind is DecisionKind.RETRY and d.card == BACKUP
    assert d.at is not None and d.at < MON + timedelta(hours=3)  # not pushed by A's 24 h limit
    # The cascade attempt on B leaves A's count as it was.
    after = [*history, failed(d.at, "insufficient_funds", card_fingerprint="fp_2")]
    assert CardContext.build(after, card_fingerprint="fp_1").declines() == on_a.declines()


def test_the_guard_checks_the_backup_cards_own_history() -> None:
    """A never-retry code on the backup card (from another invoice) still blocks it."""
    elsewhere = failed(MON - timedelta(days=3), "do_not_honor", network_advice_code="03")
    retry = Decision(DecisionKind.RETRY, MON, "cascade", DeclineClass.HARD, None, 2)
    blocked = guard(
        retry,
        history=[failed(MON - timedelta(hours=2), "stolen_card")],
        card_history=[elsewhere],
        card_fingerprint="fp_2",
        deadline=MON + timedelta(days=20),
    )
    assert blocked.kind is DecisionKind.WAIT_FOR_CARD and "Mastercard" in blocked.reason


def test_cascade_is_refused_on_a_retry_class() -> None:
    with pytest.raises(PolicyError, match="cascade applies to"):
        make_policy({"classes": {"temporary": {"cascade": True}}})


def test_the_preview_shows_which_card_each_retry_uses() -> None:
    policy = make_policy(CASCADE)
    cards = [DEFAULT, BACKUP]
    decisions = simulate(policy, failed(MON, "stolen_card"), time_zone="UTC", cards=cards)
    retries = [d for d in decisions if d.kind is DecisionKind.RETRY]
    assert [d.card for d in retries] == [BACKUP]  # B declines alike: bound too, then a wait
    assert decisions[-1].kind is DecisionKind.GIVE_UP
    rows = timeline(policy, decisions, failed_at=MON, tz=ZoneInfo("UTC"), email_hours=(8, 20))
    assert any("on the backup card mastercard •••• 4444 (pm_b)" in r.what for r in rows)


def test_the_example_policy_cascades_and_pauses() -> None:
    policy = load_policy(EXAMPLE)
    assert policy.end_action is EndAction.PAUSE_SUBSCRIPTION
    assert policy.pause_behavior is PauseBehavior.VOID
    assert policy.classes.hard.cascade and policy.classes.card_data.cascade
    assert not load_policy(DEFAULT_POLICY_FILE).classes.cascades()  # the default stays off
