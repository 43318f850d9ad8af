"""Which stored policy new cases get: one active version and an optional A/B split arm.

Why one row: every web and worker process must agree on the choice, so it lives in the
singleton ``policy_activation`` row, locked while it changes. Every change is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dunning.admin.actors import SYSTEM, Actor, actor_name
from dunning.admin.audit import record_audit
from dunning.db import table
from dunning.policy.audit import TARGET, PolicyAudit
from dunning.policy.errors import InvalidRequest, PolicyConflict
from dunning.policy.models import parse_policy
from dunning.policy.tables import ACTIVATION_ROW, PolicyActivation, RetryPolicy
from dunning.policy.versions import StoredPolicy, get_policy, store_version

DEFAULT_POLICY_FILE = Path(__file__).resolve().parents[2] / "config" / "policies" / "default.toml"


class PolicyStatus(StrEnum):
    """What a stored version is to new cases."""

    ACTIVE = "active"
    SPLIT = "split"
    INACTIVE = "inactive"


@dataclass(frozen=True)
class Activation:
    """Which policy new cases get: ``split`` takes ``split_percent`` % of customers."""

    active: StoredPolicy
    split: StoredPolicy | None
    split_percent: int
    updated_at: datetime
    updated_by: str

    def share(self, policy_id: int) -> int:
        """Percent of customers whose new cases get ``policy_id``."""
        if self.split is not None and policy_id == self.split.id:
            return self.split_percent
        return 100 - self.split_percent if policy_id == self.active.id else 0

    def status(self, policy_id: int) -> PolicyStatus:
        """Active, the split arm, or inactive."""
        if policy_id == self.active.id:
            return PolicyStatus.ACTIVE
        if self.split is not None and policy_id == self.split.id:
            return PolicyStatus.SPLIT
        return PolicyStatus.INACTIVE


@cache
def _activation_query() -> Select[Any]:
    """Built once: this runs for every case opened."""
    a, policies = table(PolicyActivation), table(RetryPolicy)
    active, split = policies.alias("active"), policies.alias("split")
    return (
        select(
            a.c.split_percent,
            a.c.updated_at,
            a.c.updated_by,
            *(c.label(f"a_{c.name}") for c in active.c),
            *(c.label(f"s_{c.name}") for c in split.c),
        )
        .select_from(
            a.join(active, active.c.id == a.c.active_policy_id).outerjoin(
                split, split.c.id == a.c.split_policy_id
            )
        )
        .where(a.c.id == ACTIVATION_ROW)
    )


def _prefixed(row: Any, prefix: str) -> StoredPolicy | None:
    values = {name[2:]: v for name, v in row.items() if name.startswith(prefix)}
    return None if values["id"] is None else StoredPolicy(**values)


def _read_activation(session: Session) -> Activation | None:
    row = session.execute(_activation_query()).mappings().one_or_none()
    if row is None:
        return None
    active = _prefixed(row, "a_")
    assert active is not None
    return Activation(
        active, _prefixed(row, "s_"), row["split_percent"], row["updated_at"], row["updated_by"]
    )


def _first_activation(session: Session, policy: StoredPolicy, actor: Actor | str) -> bool:
    """Activate ``policy`` if nothing is active yet; True if this call did it."""
    name = actor_name(actor)
    stmt = (
        insert(table(PolicyActivation))
        .values(id=ACTIVATION_ROW, active_policy_id=policy.id, split_percent=0, updated_by=name)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(table(PolicyActivation).c.id)
    )
    if session.execute(stmt).scalar_one_or_none() is None:
        return False
    details = {**policy.ref(), "previous": None}
    record_audit(session, actor, PolicyAudit.ACTIVATE, TARGET, policy.id, details)
    return True


def install_default(session: Session, path: Path = DEFAULT_POLICY_FILE) -> Activation:
    """On an empty database: store and activate the default policy, audited as ``system``."""
    text = path.read_text(encoding="utf-8")
    stored = store_version(session, parse_policy(text, source=str(path)), text, SYSTEM)
    _first_activation(session, stored, SYSTEM)
    found = _read_activation(session)
    assert found is not None
    return found


def current_activation(session: Session) -> Activation:
    """The active policy and split, installing the default policy the first time."""
    return _read_activation(session) or install_default(session)


def _lock_activation(session: Session) -> PolicyActivation:
    current_activation(session)
    stmt = (
        select(PolicyActivation)
        .where(PolicyActivation.id == ACTIVATION_ROW)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.scalars(stmt).one()


def _touch(row: PolicyActivation, actor: Actor | str) -> None:
    row.updated_at = func.now()
    row.updated_by = actor_name(actor)


def _with_percent(policy: StoredPolicy | None, percent: int) -> dict[str, Any] | None:
    return None if policy is None else {**policy.ref(), "percent": percent}


def activate(session: Session, name: str, version: int, actor: Actor | str) -> Activation:
    """Make a stored version the one active policy (also the way to roll back).

    A running A/B split ends: it compared against the policy being replaced.
    """
    target = get_policy(session, name, version)
    row = _lock_activation(session)
    if row.active_policy_id == target.id:
        return current_activation(session)
    before = current_activation(session)
    row.active_policy_id = target.id
    row.split_policy_id, row.split_percent = None, 0
    _touch(row, actor)
    session.flush()
    details = {
        **target.ref(),
        "previous": before.active.ref(),
        "split_cleared": _with_percent(before.split, before.split_percent),
    }
    record_audit(session, actor, PolicyAudit.ACTIVATE, TARGET, target.id, details)
    return current_activation(session)


def set_split(
    session: Session, name: str, version: int, percent: int, actor: Actor | str
) -> Activation:
    """Give ``percent`` % of customers (by a stable hash) policy ``name`` v``version``.

    ``percent`` 0 ends the split.
    """
    if not 0 <= percent <= 100:
        raise InvalidRequest(f"percent must be between 0 and 100, got {percent}")
    if percent == 0:
        return clear_split(session, actor)
    target = get_policy(session, name, version)
    row = _lock_activation(session)
    if row.active_policy_id == target.id:
        raise PolicyConflict(
            f"{target.label} is the active policy; a split needs another version as arm B"
        )
    if row.split_policy_id == target.id and row.split_percent == percent:
        return current_activation(session)
    before = current_activation(session)
    row.split_policy_id, row.split_percent = target.id, percent
    _touch(row, actor)
    session.flush()
    details = {
        **target.ref(),
        "percent": percent,
        "active": before.active.ref(),
        "previous": _with_percent(before.split, before.split_percent),
    }
    record_audit(session, actor, PolicyAudit.SPLIT, TARGET, target.id, details)
    return current_activation(session)


def clear_split(session: Session, actor: Actor | str) -> Activation:
    """End the A/B split: every customer gets the active policy again."""
    row = _lock_activation(session)
    before = current_activation(session)
    if before.split is None:
        return before
    row.split_policy_id, row.split_percent = None, 0
    _touch(row, actor)
    session.flush()
    details = _with_percent(before.split, before.split_percent)
    record_audit(session, actor, PolicyAudit.SPLIT_CLEAR, TARGET, before.split.id, details)
    return current_activation(session)
