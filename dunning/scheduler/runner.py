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

A task's claimed dispatches run as one batch (``run_batch``): each step is one
transaction for all of them, so an email costs a share of a few commits instead of
three of its own; a step that fails for the batch runs again for each dispatch alone.

A worker that dies in step 2 leaves the action ``running``; the sweeper dispatches it
again when its lease expires, and the handler's ``prepare`` sees ``started_attempt``
and checks what the lost dispatch did before doing it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

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


@runtime_checkable
class Prefetches(Protocol):
    """A handler that reads the rows a batch of its actions needs in a few queries, into
    the session, before ``prepare`` runs for each of them."""

    def prefetch(self, session: Session, actions: list[ScheduledAction]) -> None: ...


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


@dataclass
class _Dispatch:
    """One claimed dispatch on its way through the steps of a batch."""

    action_id: int
    dispatch: int
    handler: ActionHandler | None = None
    step: Step | Look[Any] | None = None  # what prepare (or confirm) answered
    seen: Any = None  # what look read
    outcome: Any = None  # what perform returned
    failure: Exception | None = None  # a transient error of look or perform
    result: str | None = None  # set once settled, or on an error


def run(handlers: Handlers, action_id: int, dispatch: int, now: datetime) -> str:
    """Perform one dispatch of an action; safe to call any number of times."""
    [result] = run_batch(handlers, [(action_id, dispatch)], now)
    return result


def run_batch(handlers: Handlers, claimed: list[tuple[int, int]], now: datetime) -> list[str]:
    """Perform claimed dispatches together, one outcome each; safe to call again.

    Each step takes one transaction for the whole batch, its action rows locked in id
    order: a batch of emails costs a few commits, not three per email. A step that fails
    for the batch runs again for each dispatch alone, so one bad action holds back no
    other. Effects (``look``, ``perform``) still run one by one with no transaction open.
    A batch of one raises what its action raised; in a larger batch the error is logged,
    its result says ``error``, and the action stays leased for the sweeper to retry.
    """
    items = [_Dispatch(action_id, dispatch) for action_id, dispatch in claimed]
    _together(
        items,
        lambda session, item, action: _begin(session, handlers, item, action, now),
        before=lambda session, locked: _prefetch(session, handlers, locked),
    )
    looking = [i for i in items if i.result is None and isinstance(i.step, Look)]
    _effects(looking, lambda item, handler: handler.look(_work(item)), "seen", len(items))
    _together(
        [i for i in looking if i.result is None and i.failure is None],
        lambda session, item, action: _confirm(session, item, action, now),
    )
    performing = [i for i in items if i.result is None and isinstance(i.step, Perform)]
    _effects(performing, lambda item, handler: handler.perform(_work(item)), "outcome", len(items))
    _together(
        [i for i in items if i.result is None and i.failure is not None],
        lambda session, item, action: _postpone(session, item, action, now),
    )
    _together(
        [i for i in performing if i.result is None and i.failure is None],
        lambda session, item, action: _record(session, item, action, now),
    )
    return [i.result or "error: not settled" for i in items]


def _work(item: _Dispatch) -> Any:
    assert isinstance(item.step, Perform | Look)
    return item.step.work


def _begin(
    session: Session,
    handlers: Handlers,
    item: _Dispatch,
    action: ScheduledAction | None,
    now: datetime,
) -> str | None:
    """Step 1 for one dispatch: refuse it, give it up, or ask its handler to prepare."""
    refused = _refuse(action, item.dispatch)
    if refused or action is None:
        return refused or "skipped: not leased"
    handler = item.handler = handlers[action.kind]
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
    item.step = handler.prepare(session, action, now)
    if isinstance(item.step, Perform):
        _start(action, item.dispatch)
    elif not isinstance(item.step, Look):
        return _settle(action, item.step, now)
    return None


def _confirm(
    session: Session, item: _Dispatch, action: ScheduledAction | None, now: datetime
) -> str | None:
    """After ``look``: the dispatch checked again under the lock, then ``confirm``."""
    refused = _refuse(action, item.dispatch)
    if refused or action is None:
        return refused or "skipped: not leased"
    assert item.handler is not None
    item.step = item.handler.confirm(session, action, _work(item), item.seen, now)
    if not isinstance(item.step, Perform):
        return _settle(action, item.step, now)
    _start(action, item.dispatch)
    return None


def _record(
    session: Session, item: _Dispatch, action: ScheduledAction | None, now: datetime
) -> str:
    if action is None or action.status == ActionStatus.DONE:
        return "skipped: finished by another dispatch"
    assert item.handler is not None
    finished = item.handler.record(session, action, _work(item), item.outcome, now)
    return _settle(action, finished, now)


def _postpone(
    session: Session, item: _Dispatch, action: ScheduledAction | None, now: datetime
) -> str:
    if action is None or action.status not in LEASED or action.attempts != item.dispatch:
        return "skipped: settled meanwhile"
    assert item.handler is not None and item.failure is not None
    return _settle(
        action, item.handler.postpone(session, action, _work(item), item.failure, now), now
    )


def _effects(
    items: list[_Dispatch], effect: Callable[[_Dispatch, ActionHandler], Any], into: str, size: int
) -> None:
    """Run each item's effect with no transaction open; a transient error is kept for
    ``postpone``, any other ends the item (raised from a batch of one)."""
    for item in items:
        handler = item.handler
        assert handler is not None
        try:
            setattr(item, into, effect(item, handler))
        except handler.transient as exc:
            item.failure = exc
        except Exception as exc:
            if size == 1:
                raise
            log.exception("action %s failed in dispatch %s", item.action_id, item.dispatch)
            item.result = f"error: {type(exc).__name__}"


Before = Callable[[Session, dict[int, ScheduledAction]], None]


def _prefetch(session: Session, handlers: Handlers, locked: dict[int, ScheduledAction]) -> None:
    """Let each handler that can read what its actions will need in a few queries."""
    for kind, handler in handlers.items():
        if isinstance(handler, Prefetches):
            mine = [a for a in locked.values() if a.kind == kind]
            if mine:
                handler.prefetch(session, mine)


def _together(
    items: list[_Dispatch],
    step: Callable[[Session, _Dispatch, ScheduledAction | None], str | None],
    before: Before | None = None,
) -> None:
    """Run ``step`` for every item in one transaction, their action rows locked in id
    order (``before`` sees them first); if that fails, for each item in a transaction of
    its own. The value ``step`` returns settles the item (its result) once its
    transaction has committed."""
    if not items:
        return
    if len(items) > 1:
        try:
            items_results = _in_one_transaction(items, step, before)
        except Exception:
            log.warning("%d actions failed together; each runs alone", len(items), exc_info=True)
        else:
            for item, result in items_results:
                item.result = result
            return
    for item in items:
        try:
            [(_, result)] = _in_one_transaction([item], step, before)
        except Exception as exc:
            if len(items) == 1:
                raise
            log.exception("action %s failed in dispatch %s", item.action_id, item.dispatch)
            result = f"error: {type(exc).__name__}"
        item.result = result


def _in_one_transaction(
    items: list[_Dispatch],
    step: Callable[[Session, _Dispatch, ScheduledAction | None], str | None],
    before: Before | None,
) -> list[tuple[_Dispatch, str | None]]:
    with session_scope() as session:
        locked = lock_all(session, [i.action_id for i in items])
        if before is not None and len(items) > 1:
            before(session, locked)
        return [(item, step(session, item, locked.get(item.action_id))) for item in items]


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


def lock_all(session: Session, action_ids: list[int]) -> dict[int, ScheduledAction]:
    """The action rows, locked for this transaction in id order (no deadlock between two
    batches), as they are now rather than as this session saw them before."""
    rows = session.scalars(
        select(ScheduledAction)
        .where(ScheduledAction.id.in_(sorted(set(action_ids))))
        .order_by(ScheduledAction.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {row.id: row for row in rows}
