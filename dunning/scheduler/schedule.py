"""Writing action rows: the one way every feature plans, moves or cancels an effect.

Inside ``written_together`` (a batch of cases following a renewal-day burst) the
writes wait and go out together: each case's writes in the order it asked for them,
different cases' writes (which touch different rows: keys and ``case_id`` name the
case) merged into one statement per kind. Outside it, each write goes out at once.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dunning.db import among, rounds
from dunning.db import table as core_table
from dunning.scheduler.models import ActionStatus, ScheduledAction

CANCELED_AS_UNNEEDED = "no longer needed"
_WAITING = "scheduled action writes waiting"


@dataclass(frozen=True)
class _Upsert:
    row: dict[str, Any]
    revive_any_canceled: bool


@dataclass(frozen=True)
class _Cancel:
    """Cancel a case's actions that have not started: all, all but ``keep``, or only
    those of ``kinds``; or (``keys``) the pending ones with these keys."""

    case_id: int
    keep: str | None
    kinds: tuple[str, ...] | None
    keys: tuple[str, ...] | None
    result: str


_Write = _Upsert | _Cancel


def upsert_action(
    session: Session,
    *,
    key: str,
    kind: str,
    due: datetime,
    payload: dict[str, Any],
    case_id: int | None,
    revive_any_canceled: bool,
) -> None:
    """Write the action with dedupe key ``key``, or move it while it has not started.

    A canceled action never ran, so it may come back: any canceled one when
    ``revive_any_canceled`` (charges), else only one canceled as no longer needed
    (emails, whose other cancellations mean "already said")."""
    row = {"case_id": case_id, "kind": kind, "due_at": due, "dedupe_key": key, "payload": payload}
    _write(session, _Upsert(row, revive_any_canceled))


def cancel_case_actions(
    session: Session,
    case_id: int,
    keep: str | None = None,
    *,
    kinds: tuple[str, ...] | None = None,
) -> None:
    """Cancel the case's actions that have not started (all, or all but ``keep``, or
    only those of ``kinds``), as no longer needed."""
    _write(session, _Cancel(case_id, keep, kinds, None, CANCELED_AS_UNNEEDED))


def cancel_pending_keys(session: Session, case_id: int, keys: list[str], result: str) -> None:
    """Cancel the case's pending actions with these keys (``result`` says why)."""
    if keys:
        _write(session, _Cancel(case_id, None, None, tuple(keys), result))


@contextmanager
def written_together(session: Session) -> Iterator[None]:
    """Hold action writes made inside and send them together at the end (re-entrant)."""
    if _WAITING in session.info:
        yield
        return
    session.info[_WAITING] = []
    try:
        yield
        flush_actions(session)
    finally:
        session.info.pop(_WAITING, None)


def flush_actions(session: Session) -> None:
    """Send the waiting writes: round n holds each case's n-th write, so every case's
    writes keep their order, and a round's writes of one shape are one statement.
    Call it before reading actions inside ``written_together``."""
    waiting: list[_Write] = session.info.get(_WAITING) or []
    ordered = rounds(waiting, _scope)
    waiting.clear()
    for writes in ordered:
        _send(session, writes)


def _write(session: Session, write: _Write) -> None:
    waiting: list[_Write] | None = session.info.get(_WAITING)
    if waiting is None:
        _send(session, [write])
    else:
        waiting.append(write)


def _scope(write: _Write) -> Hashable:
    """The rows a write may touch: its case's (keys name their case), else its key's."""
    if isinstance(write, _Upsert):
        return write.row["case_id"] if write.row["case_id"] is not None else write.row["dedupe_key"]
    return write.case_id


def _send(session: Session, writes: list[_Write]) -> None:
    """One statement per shape for writes that touch different cases' rows."""
    upserts: dict[bool, list[dict[str, Any]]] = {}
    cancels: dict[tuple[Any, ...], list[_Cancel]] = {}
    for write in writes:
        if isinstance(write, _Upsert):
            upserts.setdefault(write.revive_any_canceled, []).append(write.row)
        else:
            shape = (write.keep is None, write.kinds, write.keys is None, write.result)
            cancels.setdefault(shape, []).append(write)
    for revive, rows in upserts.items():
        session.execute(_upsert_statement(revive), rows)
    for same in cancels.values():
        _cancel(session, same)


@cache
def _upsert_statement(revive_any_canceled: bool) -> Any:
    action = core_table(ScheduledAction)
    canceled = action.c.status == ActionStatus.CANCELED
    revivable: ColumnElement[bool] = (
        canceled if revive_any_canceled else canceled & (action.c.result == CANCELED_AS_UNNEEDED)
    )
    stmt = insert(action)
    return stmt.on_conflict_do_update(
        index_elements=[action.c.dedupe_key],
        set_={
            "due_at": stmt.excluded.due_at,
            "payload": stmt.excluded.payload,
            "status": ActionStatus.PENDING,
            "result": None,
        },
        where=(action.c.status == ActionStatus.PENDING) | revivable,
    )


def _cancel(session: Session, same: list[_Cancel]) -> None:
    """Cancels of one shape for several cases (keys name their case, so the kept keys
    of all of them can be excluded together)."""
    first = same[0]
    stmt = update(ScheduledAction)
    if first.keys is None:
        stmt = stmt.where(
            among(ScheduledAction.case_id, [c.case_id for c in same]),
            ScheduledAction.status.in_((ActionStatus.PENDING, ActionStatus.CLAIMED)),
        )
    else:
        keys = [k for c in same for k in c.keys or ()]
        stmt = stmt.where(
            among(ScheduledAction.dedupe_key, keys), ScheduledAction.status == ActionStatus.PENDING
        )
    if first.keep is not None:
        stmt = stmt.where(~among(ScheduledAction.dedupe_key, [c.keep for c in same]))
    if first.kinds is not None:
        stmt = stmt.where(ScheduledAction.kind.in_(first.kinds))
    session.execute(stmt.values(status=ActionStatus.CANCELED, result=first.result))
