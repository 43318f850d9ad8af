"""A case that waits for the customer to authenticate (3-D Secure) is never retried
off-session: the engine waits for the customer until the deadline, then ends as the
policy says, whatever the last decline's class, a new card excepted (it clears the wait)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dunning.policy.declines import DeclineClass
from dunning.policy.engine import DecisionKind, decide
from dunning.policy.models import EndAction

from .factories import failed, make_policy, utc

FAILED_AT = "2025-06-02T08:00"  # a Monday; the policy's deadline is 21 days later
DEADLINE = utc(FAILED_AT) + timedelta(days=21)


@pytest.mark.parametrize("code", [None, "generic_decline", "insufficient_funds", "try_again_later"])
def test_a_retryable_decline_that_awaits_authentication_gets_no_retry(code: str | None) -> None:
    policy = make_policy()
    history = [failed(FAILED_AT, code)]
    retried = decide(policy, history, now=utc(FAILED_AT), time_zone="UTC")
    assert retried.kind is DecisionKind.RETRY  # the same case, not waiting: a retry

    waiting = decide(policy, history, now=utc(FAILED_AT), time_zone="UTC", awaiting_action=True)
    assert waiting.kind is DecisionKind.CUSTOMER_ACTION
    assert waiting.decline_class is DeclineClass.AUTHENTICATION_REQUIRED
    assert waiting.at == DEADLINE
    assert "authenticate" in waiting.reason


def test_ops_retry_now_is_refused_while_the_customer_must_authenticate() -> None:
    decision = decide(
        make_policy(),
        [failed(FAILED_AT)],
        now=utc("2025-06-03T10:00"),
        time_zone="UTC",
        retry_now=True,
        awaiting_action=True,
    )
    assert decision.kind is DecisionKind.CUSTOMER_ACTION


def test_at_the_deadline_the_case_ends_with_the_policys_end_action() -> None:
    policy = make_policy({"end_action": "cancel_subscription"})
    for retry_now in (False, True):
        decision = decide(
            policy,
            [failed(FAILED_AT)],
            now=DEADLINE,
            time_zone="UTC",
            retry_now=retry_now,
            awaiting_action=True,
        )
        assert decision.kind is DecisionKind.GIVE_UP
        assert decision.end_action is EndAction.CANCEL_SUBSCRIPTION


def test_every_day_until_the_deadline_waits() -> None:
    policy = make_policy()
    history = [failed(FAILED_AT, "try_again_later"), failed("2025-06-04T10:00", "do_not_honor")]
    now = utc("2025-06-04T10:00")
    while now < DEADLINE:
        decision = decide(policy, history, now=now, time_zone="UTC", awaiting_action=True)
        assert decision.kind is DecisionKind.CUSTOMER_ACTION, now
        now += timedelta(hours=7)
