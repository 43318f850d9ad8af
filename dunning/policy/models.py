"""Retry policies: pydantic models validated from TOML files under ``config/policies/``.

Why models: a policy is data that ops apply, preview and roll back; a typo in it must be
refused with a message that says which key is wrong, not turn into a silent default.
"""

from __future__ import annotations

import re
import tomllib
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Self

import holidays
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)

from dunning.policy.declines import DeclineClass

StrictHour = Annotated[int, Field(strict=True)]
Hours = Annotated[float, Field(strict=True, gt=0, le=24 * 90)]

WEEKDAYS: tuple[str, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)
PAYDAY_NAMES: frozenset[str] = frozenset({"last_day", "last_business_day", *WEEKDAYS})
_SLUG = r"^[a-z0-9][a-z0-9_\-]*$"

Payday = int | str
"""A day of month 1-31 (clamped to the month's end), ``last_day``,
``last_business_day`` or a weekday name (every such weekday is a payday)."""


class EndAction(StrEnum):
    """What happens to the subscription when dunning gives up."""

    CANCEL_SUBSCRIPTION = "cancel_subscription"
    MARK_UNCOLLECTIBLE = "mark_uncollectible"
    LEAVE_PAST_DUE = "leave_past_due"
    PAUSE_SUBSCRIPTION = "pause_subscription"  # Stripe pause_collection; a payment resumes it


class PauseBehavior(StrEnum):
    """Stripe ``pause_collection.behavior``: what happens to invoices while paused."""

    VOID = "void"
    KEEP_AS_DRAFT = "keep_as_draft"


class ClassAction(StrEnum):
    """What the policy does after a decline of a given class.

    Named apart from ``dunning.scheduler.models.ActionKind`` (kinds of scheduled rows).
    """

    RETRY = "retry"
    WAIT_FOR_CARD = "wait_for_card"
    GIVE_UP = "give_up"


class PolicyError(ValueError):
    """A policy file that does not parse or validate; ``problems`` lists each issue."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid retry policy {source}:\n{lines}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Model):
    """When the case stops: whichever limit is reached first."""

    max_attempts: int = Field(
        strict=True, ge=1, le=100, description="charge attempts in the case, the first included"
    )
    max_days: int = Field(strict=True, ge=1, le=365, description="days since the first failure")


class ClassRule(_Model):
    """What to do after a decline of one class: the action and its timing."""

    action: ClassAction
    backoff_hours: tuple[Hours, ...] = Field(
        default=(),
        description="wait after the last attempt before the n-th retry of this class; "
        "the last value repeats. With payday = true it is a minimum wait.",
    )
    payday: bool = Field(default=False, strict=True, description="retry on the next payday")
    cascade: bool = Field(
        default=False,
        strict=True,
        description="instead of waiting or giving up, retry once with the customer's next "
        "usable card on file (the network rules count per card)",
    )

    @model_validator(mode="after")
    def _timing_matches_action(self) -> Self:
        if self.cascade and self.action is ClassAction.RETRY:
            raise ValueError("cascade applies to 'wait_for_card' or 'give_up', not 'retry'")
        if self.action is ClassAction.RETRY:
            if not self.backoff_hours and not self.payday:
                raise ValueError("action 'retry' needs backoff_hours or payday = true")
        elif self.backoff_hours or self.payday:
            raise ValueError(
                f"backoff_hours and payday only apply to action 'retry', not '{self.action}'"
            )
        return self


class RetryHours(_Model):
    """Local hours in which retries may run: ``start <= hour < end``."""

    start: StrictHour = Field(ge=0, le=23)
    end: StrictHour = Field(ge=1, le=24, description="exclusive; 24 means until midnight")

    @model_validator(mode="after")
    def _start_before_end(self) -> Self:
        if self.start >= self.end:
            raise ValueError(f"start ({self.start}) must be before end ({self.end})")
        return self


@cache
def supported_holiday_countries() -> frozenset[str]:
    """ISO codes the ``holidays`` package knows."""
    return frozenset(holidays.list_supported_countries())


class Timing(_Model):
    """Where in the customer's calendar retries may land."""

    retry_hours: RetryHours = RetryHours(start=9, end=18)
    skip_weekends: bool = Field(default=True, strict=True)
    holiday_country: str | None = Field(default=None, description="ISO 3166 code, e.g. 'US'")
    min_spacing_hours: float = Field(default=1.0, strict=True, ge=0, le=24 * 30)
    paydays: tuple[StrictInt | StrictStr, ...] = (1, 15, "last_business_day")

    @field_validator("holiday_country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        if code not in supported_holiday_countries():
            raise ValueError(f"unknown holiday country {value!r} (use an ISO code like 'US')")
        return code

    @field_validator("paydays")
    @classmethod
    def _valid_paydays(cls, value: tuple[int | str, ...]) -> tuple[int | str, ...]:
        out: list[int | str] = []
        for item in value:
            if isinstance(item, int):
                if not 1 <= item <= 31:
                    raise ValueError(f"payday day of month {item} is not in 1..31")
                out.append(item)
                continue
            name = item.strip().lower()
            if name not in PAYDAY_NAMES:
                allowed = ", ".join(sorted(PAYDAY_NAMES))
                raise ValueError(f"unknown payday {item!r}: use 1..31 or one of {allowed}")
            out.append(name)
        if len(set(out)) != len(out):
            raise ValueError("paydays has duplicates")
        return tuple(out)


class ClassRules(_Model):
    """One action block per decline class; all six are required so nothing is implicit."""

    hard: ClassRule
    insufficient_funds: ClassRule
    temporary: ClassRule
    card_data: ClassRule
    authentication_required: ClassRule
    unknown: ClassRule

    @model_validator(mode="after")
    def _no_blind_retry(self) -> Self:
        for cls in (
            DeclineClass.HARD,
            DeclineClass.CARD_DATA,
            DeclineClass.AUTHENTICATION_REQUIRED,
        ):
            if self.for_class(cls).action is ClassAction.RETRY:
                raise ValueError(
                    f"{cls}: action 'retry' is not allowed; these declines are never "
                    "blind-retried (use 'wait_for_card' or 'give_up'; a new card is "
                    "retried automatically)"
                )
        return self

    def for_class(self, cls: DeclineClass) -> ClassRule:
        """The action block of a decline class."""
        rule: ClassRule = getattr(self, cls.value)
        return rule

    def cascades(self) -> bool:
        """Some class retries on a backup card: the planner reads the cards on file."""
        return any(self.for_class(cls).cascade for cls in DeclineClass)


CHANNELS: tuple[str, ...] = ("email", "sms")


class EmailStep(_Model):
    """A dunning notice sent ``day`` days after the first failure, on each of ``channels``."""

    day: int = Field(strict=True, ge=0, le=365)
    template: str = Field(min_length=1, max_length=64, pattern=_SLUG)
    channels: tuple[str, ...] = Field(
        default=("email",), description='where the notice goes: ["email"], ["sms"] or both'
    )

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [c for c in value if c not in CHANNELS]
        if not value or unknown or len(set(value)) != len(value):
            raise ValueError(
                'channels must list "email" and/or "sms", each once, '
                f'e.g. channels = ["email", "sms"] (got {list(value)})'
            )
        return value


class Policy(_Model):
    """A versioned retry policy."""

    name: str = Field(min_length=1, max_length=64, pattern=_SLUG)
    version: int = Field(strict=True, ge=1)
    description: str = ""
    end_action: EndAction
    pause_behavior: PauseBehavior = Field(
        default=PauseBehavior.VOID,
        description="with end_action = 'pause_subscription': Stripe pause_collection.behavior",
    )
    final_notice_days_before_end: int = Field(default=2, strict=True, ge=0)
    limits: Limits
    timing: Timing = Timing()
    classes: ClassRules
    email_steps: tuple[EmailStep, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        uses_payday = any(self.classes.for_class(cls).payday for cls in DeclineClass)
        if uses_payday and not self.timing.paydays:
            raise ValueError("a class uses payday = true but timing.paydays is empty")
        days = [step.day for step in self.email_steps]
        if days != sorted(set(days)):
            raise ValueError(f"email_steps days must be strictly increasing, got {days}")
        if days and days[-1] > self.limits.max_days:
            raise ValueError(
                f"email step on day {days[-1]} is after limits.max_days ({self.limits.max_days})"
            )
        if self.final_notice_days_before_end >= self.limits.max_days:
            raise ValueError(
                f"final_notice_days_before_end ({self.final_notice_days_before_end}) must be "
                f"less than limits.max_days ({self.limits.max_days})"
            )
        return self


def _format_error(error: Any) -> str:
    loc = ".".join(str(part) for part in error["loc"]) or "(policy)"
    message = re.sub(r"^Value error, ", "", error["msg"])
    value = error.get("input")
    if error["type"] in {"missing", "extra_forbidden"} or isinstance(value, dict | list):
        return f"{loc}: {message}"
    return f"{loc}: {message} (got {value!r})"


def policy_from_dict(data: dict[str, Any], *, source: str = "<dict>") -> Policy:
    """Validate an already-parsed policy mapping."""
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(source, [_format_error(e) for e in exc.errors()]) from exc


def parse_policy(text: str, *, source: str = "<string>") -> Policy:
    """Parse and validate policy TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(source, [f"not valid TOML: {exc}"]) from exc
    return policy_from_dict(data, source=source)


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy TOML file."""
    file = Path(path)
    return parse_policy(file.read_text(encoding="utf-8"), source=str(file))
