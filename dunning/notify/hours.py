"""When a customer may be mailed: the allowed local hours of their time zone.

Reuses the policy engine's calendar (``dunning.policy.timing.fit``) with a window of
its own (``DUNNING_EMAIL_HOURS_START``/``_END``, every day of the week): a dunning
email at 3 a.m. local time reads as spam and is the first one a customer deletes.
"""

from __future__ import annotations

from datetime import datetime

from dunning.policy.models import RetryHours, Timing
from dunning.policy.timing import fit
from dunning.settings import Settings
from dunning.timezones import customer_zone


def email_timing(settings: Settings) -> Timing:
    """The window as a policy ``Timing``: no weekend skipping, no holidays."""
    return Timing(
        retry_hours=RetryHours(start=settings.email_hours_start, end=settings.email_hours_end),
        skip_weekends=False,
        paydays=(),
    )


def next_allowed(t: datetime, time_zone: str | None, settings: Settings) -> datetime:
    """Earliest instant ``>= t`` inside the customer's allowed hours: ``t`` itself when
    inside them, so a notice goes now rather than at the next whole minute."""
    timing, zone = email_timing(settings), customer_zone(time_zone)
    minute = t.replace(second=0, microsecond=0)  # inside the window => so is t
    return t if fit(minute, timing, zone) == minute else fit(t, timing, zone)


def is_allowed(t: datetime, time_zone: str | None, settings: Settings) -> bool:
    """Whether ``t`` is inside the customer's allowed hours."""
    return next_allowed(t, time_zone, settings) == t
