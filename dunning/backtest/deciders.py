"""Who decides the next step of a simulated case: a policy through the real engine, or a
fixed baseline schedule. Both answer with the engine's ``Decision`` so one loop drives all.

Why baselines here: they are what billing teams use today (a processor's fixed schedule,
Stripe's recommended 8 tries in 2 weeks, daily retries, or none), and they must meet the
same cases, the same draws and the same checker as our policy.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from dunning.backtest.cases import SimCase
from dunning.policy.declines import DeclineClass, normalize_code
from dunning.policy.engine import decide
from dunning.policy.models import EndAction, Policy
from dunning.policy.records import Attempt, Decision, DecisionKind

# Stripe does not retry after a hard decline code ("non-retryable decline codes",
# docs.stripe.com/billing/revenue-recovery/smart-retries); the baselines, being the
# processor's own schedules, refuse these codes (our reading of that list) and
# Stripe's own advice_code do_not_try_again.
PROCESSOR_REFUSES: frozenset[str] = frozenset(
    {
        "authentication_required",
        "incorrect_number",
        "lost_card",
        "pickup_card",
        "revocation_of_all_authorizations",
        "revocation_of_authorization",
        "stolen_card",
        "transaction_not_allowed",
    }
)
BASELINE_EMAIL_DAYS = (0.0, 3.0, 7.0)  # the common cadence; plus a notice 2 days before end
BASELINE_WINDOW = timedelta(days=14)


class Decider(Protocol):
    """A policy under test."""

    @property
    def name(self) -> str: ...

    @property
    def email_days(self) -> Sequence[float]:
        """Days after the failure on which a dunning email goes out (final notice too)."""
        ...

    def decide(
        self,
        case: SimCase,
        history: Sequence[Attempt],
        now: datetime,
        card_updated_at: datetime | None,
    ) -> Decision:
        """The next step, given what the service would know at ``now``."""
        ...


@dataclass(frozen=True)
class EngineDecider:
    """A retry policy driven through ``dunning.policy.engine.decide``, as the planner does."""

    policy: Policy
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or f"{self.policy.name} v{self.policy.version}"

    @property
    def email_days(self) -> Sequence[float]:
        limits = self.policy.limits
        final = float(limits.max_days - self.policy.final_notice_days_before_end)
        return sorted({*(float(s.day) for s in self.policy.email_steps), final})

    def decide(
        self,
        case: SimCase,
        history: Sequence[Attempt],
        now: datetime,
        card_updated_at: datetime | None,
    ) -> Decision:
        return decide(
            self.policy,
            history,
            now=now,
            time_zone=case.time_zone,
            card_brand=case.brand,
            card_updated_at=card_updated_at,
        )


def _refused(a: Attempt) -> bool:
    return (
        normalize_code("decline_code", a.decline_code) in PROCESSOR_REFUSES
        or normalize_code("advice_code", a.advice_code) == "do_not_try_again"
    )


@dataclass(frozen=True)
class FixedSchedule:
    """Retries at fixed offsets from the first failure, at the failure's time of day;
    the case ends (subscription canceled) at ``window``. A card refreshed by the updater
    is used on the next scheduled retry."""

    label: str
    offsets: tuple[timedelta, ...]
    window: timedelta = BASELINE_WINDOW
    emails: tuple[float, ...] = field(default=BASELINE_EMAIL_DAYS)
    respect_processor: bool = True  # skip retries the processor refuses (hard codes)

    def __post_init__(self) -> None:
        if list(self.offsets) != sorted(self.offsets):
            raise ValueError(f"{self.label}: offsets must be in order")

    @property
    def name(self) -> str:
        return self.label

    @property
    def email_days(self) -> Sequence[float]:
        return sorted({*self.emails, self.window.total_seconds() / 86400 - 2})

    def decide(
        self,
        case: SimCase,
        history: Sequence[Attempt],
        now: datetime,
        card_updated_at: datetime | None,
    ) -> Decision:
        t0 = history[0].at
        number = len(history) + 1
        cls = DeclineClass.UNKNOWN
        stop = EndAction.CANCEL_SUBSCRIPTION
        if now >= t0 + self.window:
            return Decision(DecisionKind.GIVE_UP, now, "window over", cls, stop, number)
        merchant_last = next(a.at for a in reversed(history) if a.merchant_initiated)
        offsets = self.offsets
        i = max(bisect_right(offsets, merchant_last - t0), bisect_left(offsets, now - t0))
        last = history[-1]
        refused = (
            self.respect_processor
            and _refused(last)
            and not (card_updated_at and card_updated_at > last.at)
        )
        if i < len(offsets) and not refused:
            return Decision(DecisionKind.RETRY, t0 + offsets[i], "scheduled", cls, None, number)
        if i >= len(offsets) and offsets and t0 + offsets[-1] <= now:
            return Decision(DecisionKind.GIVE_UP, now, "schedule done", cls, stop, number)
        return Decision(DecisionKind.WAIT_FOR_CARD, t0 + self.window, "waiting", cls, None, number)


def _days(*days: float) -> tuple[timedelta, ...]:
    return tuple(timedelta(days=d) for d in days)


def baselines() -> list[FixedSchedule]:
    """The four reference schedules of the backtest."""
    return [
        FixedSchedule("fixed +3/+5/+7/+14", _days(3, 5, 7, 14)),
        FixedSchedule("8 over 14 days", _days(*(14 * k / 8 for k in range(1, 9)))),
        FixedSchedule("daily for 14 days", _days(*range(1, 15))),
        FixedSchedule("no retries", ()),
    ]


FIXED_BASELINE = "fixed +3/+5/+7/+14"
DAILY_BASELINE = "daily for 14 days"


def every_hour(days: int = 30) -> FixedSchedule:
    """A reckless schedule (a retry every hour, whatever the code) that must set off every
    counter of the checker."""
    hours = tuple(timedelta(hours=h) for h in range(1, days * 24 + 1))
    return FixedSchedule(
        "every hour", hours, window=timedelta(days=days), emails=(), respect_processor=False
    )
