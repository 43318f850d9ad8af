"""The one runner of scheduled actions: check the dispatch, prepare, perform, record.

Every kind of action (charge retry, end action, email, ...) has a handler that the
entry points register (``dunning.action_handlers``); the runner owns the life of the
row, so no feature writes it again (docs/architecture.md, "The action runner"):

1. In one short transaction, under the action's row lock: refuse a stale or repeated
   dispatch, then ask the handler to ``prepare``. It answers :class:`Finish` (nothing
   to do: canceled, already done), :class:`Reschedule` (not yet: a later ``due_at``)
   or :class:`Perform` (the work, read from the ledger). For ``Perform`` the action
   becomes ``running`` with ``started_attempt`` = this dispatch, and commits.
   A handler that must read the processor before it decides answers :class:`Look`:
   the runner commits, calls ``look`` with no transaction open, then takes the lock
   again, checks the dispatch again and asks ``confirm``, which answers as above.
2. ``perform`` the effect with no transaction open and no connection held (a processor
   call, an SMTP send). An error in ``handler.transient`` is not final: step 3 asks
   the handler to ``postpone`` (back to ``pending`` with a backoff, or give up).
3. In a second transaction, ``record`` the outcome (ledger rows, notification status,
   what the case does next) and finish the action.

A worker that dies in step 2 leaves the action ``running``; the sweeper dispatches it
again when its lease expires, and the handler's ``prepare`` sees ``started_attempt``
and checks what the lost dispatch did before doing it again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from dunning.db import session_scope
from dunning.scheduler.models import LEASED, ActionKind, ActionStatus, ScheduledAction

W = TypeVar("W")
log = logging.getLogger(__name__)

# Dispatches in a row whose worker died (the lease expired) before the runner hands the
# action to its handler's ``abandon``: re-planned, or failed on the case, and logged as
# an error (the alert).
MAX_DISPATCHES = 5


@dataclass(frozen=True)
class Finish:
    """End the action with this status and result."""

    status: ActionStatus
    result: str


@dataclass(frozen=True)
class Reschedule:
    """Put the action back to ``pending``, due at ``due``."""

    due: datetime
    result: str


@dataclass(frozen=True)
class Perform(Generic[W]):
    """Go ahead: ``work`` is everything the effect needs, read under the lock."""

    work: W


@dataclass(frozen=True)
class Look(Generic[W]):
    """Read the processor first (``look``), then decide again (``confirm``)."""

    work: W


Step = Finish | Reschedule | Perform[Any]


class ActionHandler(Protocol):
    """What a feature provides for one action kind."""

    kind: ActionKind
    transient: tuple[type[Exception], ...]

    def prepare(self, session: Session, action: ScheduledAction, now: datetime) -> Step | Look[Any]:
        """Step 1, under the action's lock."""
        ...

    def look(self, work: Any) -> Any:
        """Only after ``Look``: the processor reads, outside any transaction."""
        ...

    def confirm(
        self, session: Session, action: ScheduledAction, work: Any, seen: Any, now: datetime
    ) -> Step:
        """Only after ``Look``: step 1 again, under the lock, with what ``look`` saw."""
        ...

    def perform(self, work: Any) -> Any:
        """Step 2, outside any transaction: the effect itself."""
        ...

    def record(
        self, session: Session, action: ScheduledAction, work: Any, outcome: Any, now: datetime
    ) -> Finish:
        """Step 3: write what happened; the runner finishes the action as returned."""
        ...

    def postpone(
        self, session: Session, action: ScheduledAction, work: Any, exc: Exception, now: datetime
    ) -> Finish | Reschedule:
        """A transient failure of ``look`` or ``perform``: try later, or give up."""
        ...

    def abandon(
        self, session: Session, action: ScheduledAction, now: datetime
    ) -> Finish | Reschedule:
        """Its dispatches keep dying: plan it again later, or end it as failed."""
        ...


Handlers = Mapping[str, ActionHandler]


class NoLook:
    """For handlers whose ``prepare`` never answers :class:`Look`."""

    def look(self, work: Any) -> Any:
        raise AssertionError("prepare never answers Look")

    def confirm(
        self, session: Session, action: ScheduledAction, work: Any, seen: Any, now: datetime
    ) -> Step:
        raise AssertionError("prepare never answers Look")


def backoff(tries: int, cap: timedelta) -> timedelta:
    """2, 4, 8 ... minutes after the n-th try, never more than ``cap``."""
    return min(timedelta(minutes=2 ** max(tries, 1)), cap)


def run(handlers: Handlers, action_id: int, dispatch: int, now: datetime) -> str:
    """Perform one dispatch of an action; safe to call any number of times."""
    with session_scope() as session:
        action = lock(session, action_id)
        refused = _refuse(action, dispatch)
        if refused or action is None:
            return refused or "skipped: not leased"
        handler = handlers[action.kind]
        if action.crashes >= MAX_DISPATCHES:
            given_up = handler.abandon(session, action, now)
            log.error(
                "action %s (%s) died in %d dispatches: %s",
                action.dedupe_key,
                action.kind,
                action.crashes,
                "re-planned" if isinstance(given_up, Reschedule) else "failed",
            )
            action.crashes = 0  # a fresh start at the new time, if re-planned
            return _settle(action, given_up, now)
        first = handler.prepare(session, action, now)
        if isinstance(first, Perform):
            _start(action, dispatch)
        elif not isinstance(first, Look):
            return _settle(action, first, now)
    assert isinstance(first, Perform | Look)  # the others returned above
    work = first.work
    if isinstance(first, Look):
        try:
            seen = handler.look(work)
        except handler.transient as exc:
            return _postpone(handler, action_id, dispatch, work, exc, now)
        with session_scope() as session:
            action = lock(session, action_id)
            refused = _refuse(action, dispatch)
            if refused or action is None:
                return refused or "skipped: not leased"
            step = handler.confirm(session, action, work, seen, now)
            if not isinstance(step, Perform):
                return _settle(action, step, now)
            _start(action, dispatch)
            work = step.work
    try:
        outcome = handler.perform(work)
    except handler.transient as exc:
        return _postpone(handler, action_id, dispatch, work, exc, now)
    with session_scope() as session:
        action = lock(session, action_id)
        if action is None or action.status == ActionStatus.DONE:
            return "skipped: finished by another dispatch"
        return _settle(action, handler.record(session, action, work, outcome, now), now)


def _refuse(action: ScheduledAction | None, dispatch: int) -> str | None:
    """Why this dispatch must not run the action, if it must not."""
    if action is None or action.status not in LEASED:
        return "skipped: not leased"
    if action.attempts != dispatch or action.started_attempt == dispatch:
        return "skipped: stale or duplicate dispatch"
    return None


def _start(action: ScheduledAction, dispatch: int) -> None:
    action.status = ActionStatus.RUNNING
    action.started_attempt = dispatch


def _postpone(
    handler: ActionHandler, action_id: int, dispatch: int, work: Any, exc: Exception, now: datetime
) -> str:
    with session_scope() as session:
        action = lock(session, action_id)
        if action is None or action.status not in LEASED or action.attempts != dispatch:
            return "skipped: settled meanwhile"
        return _settle(action, handler.postpone(session, action, work, exc, now), now)


def _settle(action: ScheduledAction, step: Finish | Reschedule, now: datetime) -> str:
    action.crashes = 0  # this dispatch lived to settle it
    if isinstance(step, Reschedule):
        action.status = ActionStatus.PENDING
        action.due_at = step.due
        action.lease_expires_at = None
        action.result = step.result
        return f"rescheduled: {step.result}"
    finish(action, step.status, step.result, now)
    return step.result


def finish(action: ScheduledAction, status: ActionStatus, result: str, now: datetime) -> None:
    """End an action: it will not be dispatched again."""
    action.status = status
    action.result = result
    action.completed_at = now
    action.lease_expires_at = None


def lock(session: Session, action_id: int) -> ScheduledAction | None:
    """The action row, locked for this transaction."""
    return session.execute(
        select(ScheduledAction).where(ScheduledAction.id == action_id).with_for_update()
    ).scalar_one_or_none()
