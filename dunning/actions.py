"""Which handler performs each kind of scheduled action: the runner's wiring.

The scheduler's runner knows no feature; the features know no runner beyond its
step types. This module, at the top with the other entry points, puts them together
for the workers and the tests (docs/architecture.md, "The action runner").
"""

from __future__ import annotations

from contextlib import closing
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from dunning.card_updater.check import CheckCard
from dunning.card_updater.provider import StripeProvider
from dunning.cases.retry import EndCase, ResumeSubscription, RetryCharge
from dunning.notify.delivery import SendEmail
from dunning.processors.stripe_adapter import ProcessorNotConfigured, StripeAdapter
from dunning.scheduler import runner
from dunning.scheduler.models import ActionKind, ActionStatus, ScheduledAction
from dunning.scheduler.runner import NoLook
from dunning.settings import Settings, get_settings


class _NoProcessor(NoLook):
    """Charge actions when no processor is configured: refuse loudly, change nothing."""

    transient: tuple[type[Exception], ...] = ()

    def __init__(self, kind: ActionKind) -> None:
        self.kind = kind

    def prepare(self, session: Session, action: ScheduledAction, now: datetime) -> runner.Step:
        raise ProcessorNotConfigured("DUNNING_STRIPE_API_KEY is not set")

    def perform(self, work: Any) -> Any:
        raise AssertionError("never prepared")

    def record(
        self, session: Session, action: ScheduledAction, work: Any, outcome: Any, now: datetime
    ) -> runner.Finish:
        raise AssertionError("never prepared")

    def postpone(
        self, session: Session, action: ScheduledAction, work: Any, exc: Exception, now: datetime
    ) -> runner.Finish | runner.Reschedule:
        raise AssertionError("never prepared")

    def abandon(
        self, session: Session, action: ScheduledAction, now: datetime
    ) -> runner.Finish | runner.Reschedule:
        return runner.Finish(ActionStatus.FAILED, "failed: DUNNING_STRIPE_API_KEY is not set")


def handlers(
    adapter: StripeAdapter | None, settings: Settings, email: SendEmail
) -> dict[str, runner.ActionHandler]:
    """One handler per action kind."""
    retry: runner.ActionHandler = (
        RetryCharge(adapter) if adapter else _NoProcessor(ActionKind.RETRY_CHARGE)
    )
    end: runner.ActionHandler = EndCase(adapter) if adapter else _NoProcessor(ActionKind.END_ACTION)
    resume: runner.ActionHandler = (
        ResumeSubscription(adapter) if adapter else _NoProcessor(ActionKind.RESUME_SUBSCRIPTION)
    )
    provider = StripeProvider(adapter) if adapter else None
    fetch: runner.ActionHandler = (
        CheckCard(provider, ActionKind.FETCH_CARD)
        if provider
        else _NoProcessor(ActionKind.FETCH_CARD)
    )
    check: runner.ActionHandler = (
        CheckCard(provider) if provider else _NoProcessor(ActionKind.CHECK_CARD)
    )
    return {
        ActionKind.RETRY_CHARGE: retry,
        ActionKind.END_ACTION: end,
        ActionKind.RESUME_SUBSCRIPTION: resume,
        ActionKind.FETCH_CARD: fetch,
        ActionKind.CHECK_CARD: check,
        ActionKind.SEND_EMAIL: email,
    }


def run_action(adapter: StripeAdapter | None, action_id: int, dispatch: int, now: datetime) -> str:
    """Perform one dispatch of an action (``adapter`` may be None where only emails run)."""
    [result] = run_actions(adapter, [(action_id, dispatch)], now)
    return result


def run_actions(
    adapter: StripeAdapter | None, claimed: list[tuple[int, int]], now: datetime
) -> list[str]:
    """Perform claimed dispatches as one batch (``runner.run_batch``): one outcome each;
    the batch's emails share one connection to the mail server."""
    settings = get_settings()
    with closing(SendEmail(settings)) as email:
        return runner.run_batch(handlers(adapter, settings, email), claimed, now)
