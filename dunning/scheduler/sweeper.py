"""The sweeper: claim due actions in batches and send one short task per action.

Claims use ``FOR UPDATE SKIP LOCKED`` on the partial index of pending rows, so the
cost depends on the number of due rows, not on the size of the table, and several
beats or sweepers never claim the same row. A claimed or running action whose lease
expired (its worker died) is sent again; its task knows how to recover, and the
runner hands one that keeps dying to its handler's ``abandon`` (never a silent stop).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session

from dunning import queue
from dunning.db import after_commit, session_scope

LEASE = timedelta(minutes=5)

_CLAIM = text(
    """
    WITH due AS (
        SELECT id FROM scheduled_actions
        WHERE status = 'pending' AND due_at <= :now
        ORDER BY due_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE scheduled_actions a
    SET status = 'claimed', attempts = a.attempts + 1, lease_expires_at = :lease_until
    FROM due WHERE a.id = due.id
    RETURNING a.id, a.attempts
    """
)

_RECLAIM = text(
    """
    WITH expired AS (
        SELECT id FROM scheduled_actions
        WHERE status IN ('claimed', 'running') AND lease_expires_at < :now
        ORDER BY lease_expires_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    )
    UPDATE scheduled_actions a
    SET attempts = a.attempts + 1, crashes = a.crashes + 1, lease_expires_at = :lease_until
    FROM expired WHERE a.id = expired.id
    RETURNING a.id, a.attempts
    """
)


def claim(session: Session, now: datetime, limit: int) -> list[tuple[int, int]]:
    """Claim up to ``limit`` due or lease-expired actions; return (id, dispatch number)."""
    params = {"now": now, "limit": limit, "lease_until": now + LEASE}
    reclaimed = [(row.id, row.attempts) for row in session.execute(_RECLAIM, params)]
    claimed = [(row.id, row.attempts) for row in session.execute(_CLAIM, params)]
    return reclaimed + claimed


def sweep(now: datetime, *, batch: int = 500, max_actions: int = 50_000) -> int:
    """Claim and dispatch what is due at ``now``, up to ``max_actions``; return how many
    actions were sent.

    ``now`` is the sweeper's clock: beat passes the wall clock, tests pass their own.
    """
    sent = 0
    while sent < max_actions:
        want = min(batch, max_actions - sent)
        with session_scope() as session:
            claimed = claim(session, now, want)
            if claimed:
                after_commit(session, lambda c=claimed: queue.send_run_actions(c, now))  # type: ignore[misc]
        sent += len(claimed)
        if len(claimed) < want:
            break
    return sent
