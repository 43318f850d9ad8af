"""The policy preview's time line: retries, waits, the end and the emails, one row per step.

Pure tests of ``dunning.policy.schedule_view`` and of ``dunning policy preview --file``
(which needs no database); the API's ``timeline`` is in ``tests/e2e/test_policy_preview``.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from dunning.cli import app
from dunning.notify import hours
from dunning.policy.models import Policy, parse_policy
from dunning.policy.preview_request import Hypothetical, preview
from dunning.policy.schedule_view import Row, RowKind, email_timing, timeline
from dunning.settings import Settings

POLICY = """
name = "timeline"
version = 1
end_action = "cancel_subscription"
final_notice_days_before_end = 2

[limits]
max_attempts = 4
max_days = 14

[timing]
retry_hours = { start = 9, end = 18 }
skip_weekends = true
min_spacing_hours = 4
paydays = [1, 15]

[classes.hard]
action = "wait_for_card"
[classes.card_data]
action = "wait_for_card"
[classes.authentication_required]
action = "wait_for_card"
[classes.insufficient_funds]
action = "retry"
backoff_hours = [24, 48]
[classes.temporary]
action = "give_up"
[classes.unknown]
action = "retry"
backoff_hours = [24]

[[email_steps]]
day = 0
template = "payment_failed"
[[email_steps]]
day = 3
template = "payment_reminder"
[[email_steps]]
day = 7
template = "payment_reminder"
"""
FAILED_AT = datetime(2025, 3, 3, 14, 0, tzinfo=UTC)  # Monday 09:00 in New York
NEW_YORK = ZoneInfo("America/New_York")
EMAIL_HOURS = (8, 20)


def _policy() -> Policy:
    return parse_policy(POLICY, source="test")


def _rows(code: str, policy: Policy | None = None) -> list[Row]:
    policy = policy or _policy()
    failure = Hypothetical(decline_code=code, time_zone=NEW_YORK.key, failed_at=FAILED_AT)
    decisions = preview(policy, failure)
    return timeline(policy, decisions, failed_at=FAILED_AT, tz=NEW_YORK, email_hours=EMAIL_HOURS)


def _emails(rows: list[Row]) -> list[tuple[str | None, datetime]]:
    return [(r.template, r.at) for r in rows if r.kind is RowKind.EMAIL]


def _one_row_per_step(rows: list[Row]) -> None:
    steps = Counter((r.kind, r.at, r.template) for r in rows)
    assert max(steps.values()) == 1, steps
    assert [r.at for r in rows] == sorted(r.at for r in rows)


def test_a_hard_decline_waits_for_a_card_in_words_with_the_emails_on_the_line() -> None:
    rows = _rows("stolen_card")
    _one_row_per_step(rows)
    deadline = FAILED_AT + timedelta(days=14)
    [wait] = [r for r in rows if r.kind is RowKind.WAIT_FOR_CARD]
    assert wait.at == FAILED_AT and wait.until == deadline  # from the failure, not at the end
    assert "waits for a new card until Mon 2025-03-17 10:00 EDT" in wait.what
    assert rows[-1].kind is RowKind.GIVE_UP and rows[-1].at == deadline
    assert "cancels the subscription" in rows[-1].what
    # Each email on its day at the first email hour (08:00 local); the final notice two
    # days before the end; none after it.
    assert _emails(rows) == [
        ("payment_failed", FAILED_AT),  # 09:00 local is inside 08:00-20:00
        ("payment_reminder", FAILED_AT + timedelta(days=3)),
        ("payment_reminder", FAILED_AT + timedelta(days=7)),
        ("final_notice", FAILED_AT + timedelta(days=12)),
    ]


def test_retries_and_emails_interleave_and_the_wait_after_the_last_retry_starts_there() -> None:
    rows = _rows("insufficient_funds")
    _one_row_per_step(rows)
    kinds = [r.kind for r in rows]
    assert kinds.count(RowKind.RETRY) == 3  # attempts 2, 3, 4 of 4
    assert [r.attempt_number for r in rows if r.kind is RowKind.RETRY] == [2, 3, 4]
    last_retry = [r for r in rows if r.kind is RowKind.RETRY][-1]
    [wait] = [r for r in rows if r.kind is RowKind.WAIT_FOR_CARD]
    assert wait.at == last_retry.at and wait.until == FAILED_AT + timedelta(days=14)
    assert kinds.index(RowKind.EMAIL) < kinds.index(RowKind.RETRY)  # day 0 before retry 1
    assert kinds[-1] is RowKind.GIVE_UP and RowKind.EMAIL in kinds[kinds.index(RowKind.RETRY) :]


def test_an_authentication_decline_sends_the_action_email_instead_of_the_first() -> None:
    rows = _rows("authentication_required")
    _one_row_per_step(rows)
    [wait] = [r for r in rows if r.kind is RowKind.CUSTOMER_ACTION]
    assert wait.at == FAILED_AT
    assert "waits for the customer to confirm the payment" in wait.what
    emails = _emails(rows)
    assert emails[0] == ("action_required", FAILED_AT)
    assert "payment_failed" not in [t for t, _ in emails]  # superseded, as the sequence does
    assert "instead of payment_failed" in rows[1].what


def test_a_give_up_class_ends_at_once_and_no_email_comes_after() -> None:
    rows = _rows("processing_error")  # temporary: give_up in this policy
    assert [r.kind for r in rows] == [RowKind.GIVE_UP]


def test_emails_move_into_the_email_hours() -> None:
    early = FAILED_AT.replace(hour=9)  # 04:00 in New York
    policy = _policy()
    failure = Hypothetical(decline_code="stolen_card", time_zone=NEW_YORK.key, failed_at=early)
    decisions = preview(policy, failure)
    rows = timeline(policy, decisions, failed_at=early, tz=NEW_YORK, email_hours=EMAIL_HOURS)
    first = next(r for r in rows if r.kind is RowKind.EMAIL)
    assert first.at.astimezone(NEW_YORK).hour == 8


@pytest.mark.parametrize("window", [(8, 20), (0, 24), (9, 17)])
def test_the_email_window_is_the_senders(window: tuple[int, int]) -> None:
    settings = Settings(email_hours_start=window[0], email_hours_end=window[1])
    assert email_timing(*window) == hours.email_timing(settings)


def test_the_preview_command_prints_emails_and_waits_in_words(tmp_path: Path) -> None:
    file = tmp_path / "policy.toml"
    file.write_text(POLICY, encoding="utf-8")
    args = ["policy", "preview", "--file", str(file), "--decline-code", "stolen_card",
            "--time-zone", "America/New_York", "--failed-at", "2025-03-03T14:00Z"]  # fmt: skip
    shown = CliRunner().invoke(app, args)
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    assert "waits for a new card until Mon 2025-03-17 10:00 EDT" in out
    lines = [line.split() for line in out.splitlines()]
    steps = [(words[1], " ".join(words[2:6])) for words in lines if words[:1] == ["-"]]
    assert steps == [
        ("wait_for_card", "Mon 2025-03-03 09:00 EST"),
        ("email", "Mon 2025-03-03 09:00 EST"),
        ("email", "Thu 2025-03-06 09:00 EST"),
        ("email", "Mon 2025-03-10 10:00 EDT"),  # 7 x 24 h: past the DST change
        ("email", "Sat 2025-03-15 10:00 EDT"),
        ("give_up", "Mon 2025-03-17 10:00 EDT"),
    ]
    assert "final notice: 2 days before the case ends and cancels the subscription" in out
