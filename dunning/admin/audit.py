"""The audit log: one row per ops change, written in the change's own transaction.

Why the caller's transaction: the row and the change commit or roll back together, so
the log never shows a change that did not happen nor misses one that did.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dunning.admin.actors import Actor, actor_name
from dunning.admin.models import AuditEntry


def record_audit(
    session: Session,
    actor: Actor | str,
    action: str,
    target_type: str,
    target_id: str | int | None,
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Add one audit row (flushed, not committed): ``action`` like ``policy.activate``."""
    entry = AuditEntry(
        actor=actor_name(actor),
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        # through JSON once so datetimes and the like are stored as text, not refused
        details=json.loads(json.dumps(dict(details or {}), default=str)),
    )
    session.add(entry)
    session.flush()
    return entry


def recent_audit(session: Session, limit: int = 100) -> list[AuditEntry]:
    """The newest audit rows first."""
    stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    return list(session.scalars(stmt))
