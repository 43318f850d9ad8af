"""Writing an action row: the one way every feature plans an effect."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dunning.db import table as core_table
from dunning.scheduler.models import ActionStatus, ScheduledAction

CANCELED_AS_UNNEEDED = "no longer needed"


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
    action = core_table(ScheduledAction)
    canceled = action.c.status == ActionStatus.CANCELED
    revivable: ColumnElement[bool] = (
        canceled if revive_any_canceled else canceled & (action.c.result == CANCELED_AS_UNNEEDED)
    )
    stmt = insert(action).values(
        case_id=case_id, kind=kind, due_at=due, dedupe_key=key, payload=payload
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[action.c.dedupe_key],
            set_={
                "due_at": stmt.excluded.due_at,
                "payload": stmt.excluded.payload,
                "status": ActionStatus.PENDING,
                "result": None,
            },
            where=(action.c.status == ActionStatus.PENDING) | revivable,
        )
    )
