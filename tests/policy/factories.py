"""Builders for policies and attempts used across the policy tests."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from dunning.policy.models import Policy, policy_from_dict
from dunning.policy.records import Attempt

BASE_POLICY: dict[str, Any] = {
    "name": "test",
    "version": 1,
    "end_action": "mark_uncollectible",
    "final_notice_days_before_end": 2,
    "limits": {"max_attempts": 8, "max_days": 21},
    "timing": {
        "retry_hours": {"start": 9, "end": 18},
        "skip_weekends": True,
        "min_spacing_hours": 1,
        "paydays": [1, 15, "last_business_day", "friday"],
    },
    "classes": {
        "hard": {"action": "wait_for_card"},
        "card_data": {"action": "wait_for_card"},
        "authentication_required": {"action": "wait_for_card"},
        "insufficient_funds": {"action": "retry", "payday": True},
        "temporary": {"action": "retry", "backoff_hours": [6, 24, 48]},
        "unknown": {"action": "retry", "backoff_hours": [24]},
    },
    "email_steps": [{"day": 0, "template": "payment_failed"}],
}


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def policy_dict(changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The base test policy with nested ``changes`` merged in (None removes a key)."""
    return _merge(BASE_POLICY, changes or {})


def make_policy(changes: dict[str, Any] | None = None) -> Policy:
    """A validated test policy."""
    return policy_from_dict(policy_dict(changes))


def utc(text: str) -> datetime:
    """An aware UTC datetime from ISO text."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def failed(at: str | datetime, decline_code: str | None = None, **fields: Any) -> Attempt:
    """A failed Visa charge of 20.00 USD unless told otherwise."""
    when = utc(at) if isinstance(at, str) else at
    base = Attempt(
        at=when,
        amount=2000,
        currency="usd",
        decline_code=decline_code,
        card_brand="visa",
        card_fingerprint="fp_1",
    )
    return replace(base, **fields)
