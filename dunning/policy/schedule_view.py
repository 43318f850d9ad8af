"""A policy preview as one time line: retries, waits, the end, and the emails between.

Why: the engine's decisions alone say nothing of the emails, and a wait for a new card
was shown at its deadline next to the give-up, as if it were a second end. Ops read
here, in words and in time order, one row per step, what the customer will live
through after one failure.

The emails follow the rules of ``dunning.notify.sequence.plan_case_emails``, which
policy code must not import (notify sits above the policy store): each email step on
its day after the first failure, the final notice ``final_notice_days_before_end``
days before the case ends, and for an authentication decline the action-required
email at once, instead of the emails due at that moment. Each goes out at the first
allowed email hour from then (``dunning.notify.hours``: the same calendar, no weekend
or holiday skipping); emails after the case ends are never sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from dunning.policy.declines import DeclineClass
from dunning.policy.models import EndAction, Policy, RetryHours, Timing
from dunning.policy.records import Decision, DecisionKind
from dunning.policy.timing import fit

FINAL_NOTICE = "final_notice"
ACTION_REQUIRED = "action_required"

END_ACTION_WORDS = {
    EndAction.CANCEL_SUBSCRIPTION: "cancels the subscription",
    EndAction.MARK_UNCOLLECTIBLE: "marks the invoice uncollectible",
    EndAction.LEAVE_PAST_DUE: "leaves the subscription past due",
    EndAction.PAUSE_SUBSCRIPTION: "pauses the subscription (paying later resumes it)",
}


class RowKind(StrEnum):
    """What a row of the time line is."""

    RETRY = "retry"
    WAIT_FOR_CARD = "wait_for_card"
    CUSTOMER_ACTION = "customer_action"
    GIVE_UP = "give_up"
    EMAIL = "email"


@dataclass(frozen=True)
class Row:
    """One step: when (UTC), what, in words, and the engine's reason for a decision."""

    at: datetime
    kind: RowKind
    what: str
    reason: str | None = None
    attempt_number: int | None = None  # retries: the attempt the retry makes
    template: str | None = None  # emails
    until: datetime | None = None  # waits: the case's deadline


def local(t: datetime, tz: ZoneInfo) -> str:
    """``Tue 2026-03-24 06:00 EDT``: how the preview writes a moment."""
    return f"{t.astimezone(tz):%a %Y-%m-%d %H:%M %Z}"


def email_timing(start_hour: int, end_hour: int) -> Timing:
    """The email window as a calendar: every day of the week, no holidays (the rule of
    ``dunning.notify.hours.email_timing``, which a test keeps equal)."""
    return Timing(
        retry_hours=RetryHours(start=start_hour, end=end_hour), skip_weekends=False, paydays=()
    )


def _decision_rows(
    policy: Policy, decisions: list[Decision], failed_at: datetime, tz: ZoneInfo
) -> list[Row]:
    rows: list[Row] = []
    since = failed_at  # when the engine made the decision: the last attempt's time
    for d in decisions:
        if d.at is None:
            continue
        if d.kind is DecisionKind.RETRY:
            what = f"retry: attempt {d.attempt_number} of {policy.limits.max_attempts}"
            if d.card is not None:
                what = f"{what}, on the backup card {d.card.label}"
            rows.append(Row(d.at, RowKind.RETRY, what, d.reason, attempt_number=d.attempt_number))
            since = d.at
        elif d.kind in (DecisionKind.WAIT_FOR_CARD, DecisionKind.CUSTOMER_ACTION):
            # The wait starts now and lasts until the deadline, where the give-up row is.
            if d.kind is DecisionKind.CUSTOMER_ACTION:
                what = "no retry: waits for the customer to confirm the payment or add a new card"
                kind = RowKind.CUSTOMER_ACTION
            else:
                what = "no retry: waits for a new card"
                kind = RowKind.WAIT_FOR_CARD
            what = f"{what} until {local(d.at, tz)}"
            rows.append(Row(since, kind, what, d.reason, until=d.at))
        else:
            end = END_ACTION_WORDS.get(d.end_action or policy.end_action, "ends the case")
            rows.append(Row(d.at, RowKind.GIVE_UP, f"the case ends: {end}", d.reason))
    return rows


def _needs_action_email(decisions: list[Decision]) -> bool:
    """The first decision follows an authentication decline (every retry fails alike)."""
    if not decisions:
        return False
    first = decisions[0]
    return (
        first.kind is DecisionKind.CUSTOMER_ACTION
        or first.decline_class is DeclineClass.AUTHENTICATION_REQUIRED
    )


def _email_rows(
    policy: Policy, decisions: list[Decision], failed_at: datetime, tz: ZoneInfo, window: Timing
) -> list[Row]:
    end_at = failed_at + timedelta(days=policy.limits.max_days)
    planned: list[tuple[datetime, str, str]] = []  # (nominal time, template, words)
    for index, step in enumerate(policy.email_steps):
        words = f"email step {index + 1}: {step.template} (day {step.day})"
        planned.append((failed_at + timedelta(days=step.day), step.template, words))
    days_before = policy.final_notice_days_before_end
    end = END_ACTION_WORDS[policy.end_action]
    planned.append(
        (
            end_at - timedelta(days=days_before),
            FINAL_NOTICE,
            f"final notice: {days_before} days before the case ends and {end}",
        )
    )
    if _needs_action_email(decisions):
        replaced = [t for at, t, _ in planned if at <= failed_at]
        words = "action required: asks the customer to confirm the payment"
        if replaced:
            words += f" (sent instead of {', '.join(replaced)}, due at the same time)"
        planned = [p for p in planned if p[0] > failed_at]
        planned.append((failed_at, ACTION_REQUIRED, words))
    return [
        Row(fit(at, window, tz), RowKind.EMAIL, words, template=template)
        for at, template, words in planned
    ]


def timeline(
    policy: Policy,
    decisions: list[Decision],
    *,
    failed_at: datetime,
    tz: ZoneInfo,
    email_hours: tuple[int, int],
) -> list[Row]:
    """Every step after the first failure at ``failed_at``, in time order.

    ``decisions``: the engine's simulated schedule for that failure (``preview``);
    ``email_hours``: the local hours emails may go out in, ``[start, end)``.
    """
    rows = _decision_rows(policy, decisions, failed_at, tz)
    ends = [r.at for r in rows if r.kind is RowKind.GIVE_UP]
    emails = _email_rows(policy, decisions, failed_at, tz, email_timing(*email_hours))
    rows += [e for e in emails if not ends or e.at < ends[0]]  # none after the case ended
    order = {kind: n for n, kind in enumerate(RowKind)}
    return sorted(rows, key=lambda r: (r.at, r.kind is RowKind.EMAIL, order[r.kind]))
