"""Policy TOML parsing and validation."""

# ruff: noqa: E501  (the table of bad inputs and their messages reads best one per line)

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dunning.policy.declines import DeclineClass
from dunning.policy.models import (
    ClassAction,
    EndAction,
    PolicyError,
    load_policy,
    parse_policy,
    policy_from_dict,
)

from .factories import make_policy, policy_dict

DEFAULT = Path(__file__).resolve().parents[2] / "config" / "policies" / "default.toml"


def test_default_policy_loads() -> None:
    policy = load_policy(DEFAULT)
    assert policy.name == "default"
    assert policy.version == 2
    assert policy.limits.max_attempts == 5
    assert policy.limits.max_days == 28
    assert policy.end_action is EndAction.CANCEL_SUBSCRIPTION
    assert policy.final_notice_days_before_end == 2
    assert [s.day for s in policy.email_steps] == [0, 3, 7, 10, 14, 21]
    assert policy.classes.insufficient_funds.payday
    assert policy.classes.unknown.payday  # do_not_honor and friends: often money
    assert policy.classes.temporary.backoff_hours[:3] == (6, 24, 48)
    for cls in (DeclineClass.HARD, DeclineClass.CARD_DATA):
        assert policy.classes.for_class(cls).action is ClassAction.WAIT_FOR_CARD


def test_default_policy_is_documented_line_by_line() -> None:
    """Every setting (or its group of settings, or its table) has a comment right above."""
    lines = [line.strip() for line in DEFAULT.read_text(encoding="utf-8").splitlines()]

    def is_setting(line: str) -> bool:
        return "=" in line and not line.startswith(("#", "["))

    for i, line in enumerate(lines):
        if not is_setting(line):
            continue
        j = i - 1
        while is_setting(lines[j]):
            j -= 1
        if lines[j].startswith("["):
            j -= 1
        assert lines[j].startswith("#"), f"default.toml line {i + 1} has no comment: {line}"


def test_parse_policy_from_text() -> None:
    text = """
name = "tiny"
version = 3
end_action = "leave_past_due"
final_notice_days_before_end = 1
[limits]
max_attempts = 3
max_days = 7
[classes]
hard = { action = "give_up" }
card_data = { action = "wait_for_card" }
authentication_required = { action = "wait_for_card" }
insufficient_funds = { action = "retry", payday = true }
temporary = { action = "retry", backoff_hours = [1.5, 12] }
unknown = { action = "give_up" }
"""
    policy = parse_policy(text)
    assert policy.version == 3
    assert policy.timing.retry_hours.start == 9  # defaults fill the timing block
    assert policy.classes.temporary.backoff_hours == (1.5, 12.0)
    assert policy.email_steps == ()


def test_paydays_and_country_are_normalised() -> None:
    policy = make_policy(
        {"timing": {"paydays": [31, "Friday", "LAST_DAY"], "holiday_country": "de"}}
    )
    assert policy.timing.paydays == (31, "friday", "last_day")
    assert policy.timing.holiday_country == "DE"


def _problems(changes: dict[str, Any]) -> str:
    with pytest.raises(PolicyError) as info:
        make_policy(changes)
    return str(info.value)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
        ({"limits": {"max_tries": 3}}, "limits.max_tries: Extra inputs are not permitted"),
        ({"limits": {"max_attempts": 0}}, "limits.max_attempts: Input should be greater than or equal to 1 (got 0)"),
        ({"limits": {"max_attempts": "8"}}, "limits.max_attempts: Input should be a valid integer"),
        ({"limits": {"max_days": 400}}, "limits.max_days: Input should be less than or equal to 365"),
        ({"limits": None}, "limits: Field required"),
        ({"version": 0}, "version: Input should be greater than or equal to 1"),
        ({"name": "Has Spaces"}, "name: String should match pattern"),
        ({"end_action": "refund"}, "end_action: Input should be 'cancel_subscription', 'mark_uncollectible', 'leave_past_due' or 'pause_subscription'"),
        ({"timing": {"retry_hours": {"start": 24, "end": 24}}}, "timing.retry_hours.start: Input should be less than or equal to 23"),
        ({"timing": {"retry_hours": {"start": -1, "end": 5}}}, "timing.retry_hours.start: Input should be greater than or equal to 0"),
        ({"timing": {"retry_hours": {"start": 18, "end": 9}}}, "timing.retry_hours: start (18) must be before end (9)"),
        ({"timing": {"retry_hours": {"start": 9, "end": 9}}}, "start (9) must be before end (9)"),
        ({"timing": {"retry_hours": {"start": 9, "end": 25}}}, "timing.retry_hours.end: Input should be less than or equal to 24"),
        ({"timing": {"min_spacing_hours": -1}}, "timing.min_spacing_hours: Input should be greater than or equal to 0"),
        ({"timing": {"holiday_country": "XX"}}, "timing.holiday_country: unknown holiday country 'XX'"),
        ({"timing": {"paydays": [32]}}, "payday day of month 32 is not in 1..31"),
        ({"timing": {"paydays": ["someday"]}}, "unknown payday 'someday'"),
        ({"timing": {"paydays": [1, 1]}}, "paydays has duplicates"),
        ({"timing": {"paydays": []}}, "a class uses payday = true but timing.paydays is empty"),
        ({"timing": {"skip_weekends": "yes"}}, "timing.skip_weekends: Input should be a valid boolean"),
        ({"classes": {"hard": {"action": "retry", "backoff_hours": [1]}}}, "classes: hard: action 'retry' is not allowed"),
        ({"classes": {"card_data": {"action": "retry", "backoff_hours": [1]}}}, "card_data: action 'retry' is not allowed"),
        ({"classes": {"authentication_required": {"action": "retry", "payday": True}}}, "authentication_required: action 'retry' is not allowed"),
        ({"classes": {"temporary": {"backoff_hours": []}}}, "classes.temporary: action 'retry' needs backoff_hours or payday = true"),
        ({"classes": {"temporary": {"backoff_hours": [0]}}}, "classes.temporary.backoff_hours.0: Input should be greater than 0"),
        ({"classes": {"temporary": {"action": "pray"}}}, "classes.temporary.action: Input should be 'retry', 'wait_for_card' or 'give_up'"),
        ({"classes": {"hard": {"action": "give_up", "payday": True}}}, "classes.hard: backoff_hours and payday only apply to action 'retry', not 'give_up'"),
        ({"classes": {"unknown": None}}, "classes.unknown: Field required"),
        ({"classes": {"soft": {"action": "give_up"}}}, "classes.soft: Extra inputs are not permitted"),
        ({"email_steps": [{"day": 3, "template": "a"}, {"day": 3, "template": "b"}]}, "email_steps days must be strictly increasing, got [3, 3]"),
        ({"email_steps": [{"day": 30, "template": "late"}]}, "email step on day 30 is after limits.max_days (21)"),
        ({"email_steps": [{"day": 1, "template": "Bad Name"}]}, "email_steps.0.template: String should match pattern"),
        ({"email_steps": [{"day": 1}]}, "email_steps.0.template: Field required"),
        ({"final_notice_days_before_end": 21}, "final_notice_days_before_end (21) must be less than limits.max_days (21)"),
    ],
)  # fmt: skip
def test_bad_policies_give_clear_errors(changes: dict[str, Any], message: str) -> None:
    assert message in _problems(changes)


def test_every_problem_is_reported_at_once() -> None:
    text = _problems({"limits": {"max_attempts": 0, "max_days": 0}, "colour": "blue"})
    assert "limits.max_attempts" in text
    assert "limits.max_days" in text
    assert "colour" in text


def test_bad_toml_syntax_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\nversion = \n', encoding="utf-8")
    with pytest.raises(
        PolicyError, match=r"invalid retry policy .*broken\.toml:\n  - not valid TOML"
    ):
        load_policy(path)


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_policy(tmp_path / "nope.toml")


def test_policy_error_lists_problems() -> None:
    with pytest.raises(PolicyError) as info:
        policy_from_dict(policy_dict({"version": "one"}), source="inline")
    assert info.value.source == "inline"
    assert info.value.problems == ["version: Input should be a valid integer (got 'one')"]


def test_policies_are_immutable() -> None:
    policy = make_policy()
    with pytest.raises(ValueError, match="frozen"):
        policy.version = 2
