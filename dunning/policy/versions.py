"""Stored policy versions: immutable rows, read by name and version or by id.

Why immutable: a case records the version that decides it, so a version must read the
same forever for explanations and rollback. A change is a new version, audited.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dunning.admin.actors import Actor, actor_name
from dunning.admin.audit import record_audit
from dunning.db import table
from dunning.policy.audit import TARGET, PolicyAudit
from dunning.policy.errors import PolicyConflict, PolicyNotFound
from dunning.policy.models import Policy, parse_policy
from dunning.policy.tables import RetryPolicy


@lru_cache(maxsize=128)
def _parse(source: str) -> Policy:
    """Parsed policies keyed by their text: versions are immutable, so this never stales."""
    return parse_policy(source)


@dataclass(frozen=True)
class StoredPolicy:
    """A stored version; ``created`` is True only on the ``apply_policy`` call that stored it."""

    id: int
    name: str
    version: int
    source: str
    created_at: datetime
    created_by: str
    created: bool = False

    @property
    def policy(self) -> Policy:
        return _parse(self.source)

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version}"

    def ref(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "version": self.version}


def _stored(row: Any, created: bool = False) -> StoredPolicy:
    return StoredPolicy(
        row.id, row.name, row.version, row.source, row.created_at, row.created_by, created
    )


def store_version(session: Session, policy: Policy, text: str, actor: Actor | str) -> StoredPolicy:
    """Insert a validated version, audited; the identical text again returns the stored one.

    Raises ``PolicyConflict`` when the name and version exist with other text.
    """
    t = table(RetryPolicy)
    stmt = (
        insert(t)
        .values(
            name=policy.name,
            version=policy.version,
            source=text,
            created_by=actor_name(actor),
        )
        .on_conflict_do_nothing(index_elements=["name", "version"])
        .returning(*t.c)
    )
    row = session.execute(stmt).one_or_none()
    if row is None:
        existing = get_policy(session, policy.name, policy.version)
        if existing.source != text:
            raise PolicyConflict(
                f"policy {existing.label} already exists with different text; versions are "
                f"immutable: bump `version` (e.g. to {latest_version(session, policy.name) + 1})"
                " and apply again"
            )
        return existing
    details = {
        "name": policy.name,
        "version": policy.version,
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    record_audit(session, actor, PolicyAudit.APPLY, TARGET, row.id, details)
    return _stored(row, created=True)


def latest_version(session: Session, name: str) -> int:
    """The highest stored version of ``name``, 0 if none."""
    found = session.scalar(select(func.max(RetryPolicy.version)).where(RetryPolicy.name == name))
    return int(found or 0)


def get_policy(session: Session, name: str, version: int | None = None) -> StoredPolicy:
    """A stored version by name and version (the latest when ``version`` is None)."""
    stmt = select(RetryPolicy).where(RetryPolicy.name == name)
    if version is None:
        stmt = stmt.order_by(RetryPolicy.version.desc()).limit(1)
    else:
        stmt = stmt.where(RetryPolicy.version == version)
    row = session.scalars(stmt).first()
    if row is None:
        which = name if version is None else f"{name} v{version}"
        raise PolicyNotFound(f"no stored policy {which} (see: dunning policy list)")
    return _stored(row)


def get_policy_by_id(session: Session, policy_id: int) -> StoredPolicy:
    """A stored version by id, e.g. the one a case recorded when it opened."""
    row = session.get(RetryPolicy, policy_id)
    if row is None:
        raise PolicyNotFound(f"no stored policy with id {policy_id}")
    return _stored(row)


def list_policies(session: Session) -> list[StoredPolicy]:
    """Every stored version, by name, newest version first."""
    stmt = select(RetryPolicy).order_by(RetryPolicy.name, RetryPolicy.version.desc())
    return [_stored(row) for row in session.scalars(stmt)]
