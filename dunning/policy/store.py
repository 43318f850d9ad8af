"""Stored retry policies: immutable versions, exactly one active, an optional A/B split.

Why in Postgres: a case records the policy version that decides it, so every version
stays readable for explanation and rollback, and every web and worker process must agree
on one active choice (a singleton ``policy_activation`` row). Every change is audited.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Integer,
    Select,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from dunning.admin.actors import SYSTEM, Actor, actor_name
from dunning.admin.audit import record_audit
from dunning.db import Base, table
from dunning.policy.models import Policy, PolicyError, parse_policy
from dunning.policy.preview import simulate
from dunning.policy.records import Attempt, Decision

DEFAULT_POLICY_FILE = Path(__file__).resolve().parents[2] / "config" / "policies" / "default.toml"
_SINGLETON = 1


class RetryPolicy(Base):
    """One version of a policy, its TOML kept verbatim; rows are never updated."""

    __tablename__ = "retry_policies"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_retry_policies_version"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[str] = mapped_column(String(255))


class PolicyActivation(Base):
    """The single row saying which policy new cases get, and the A/B arm if any."""

    __tablename__ = "policy_activation"
    __table_args__ = (
        CheckConstraint("id = 1", name="ck_policy_activation_singleton"),
        CheckConstraint("split_percent BETWEEN 0 AND 100", name="ck_policy_activation_percent"),
        CheckConstraint(
            "(split_policy_id IS NULL) = (split_percent = 0)", name="ck_policy_activation_split"
        ),
        CheckConstraint(
            "split_policy_id IS NULL OR split_policy_id <> active_policy_id",
            name="ck_policy_activation_distinct",
        ),
    )

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, default=_SINGLETON)
    active_policy_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("retry_policies.id"))
    split_policy_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("retry_policies.id"))
    split_percent: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_by: Mapped[str] = mapped_column(String(255))


class PolicyStoreError(Exception):
    """A request the store refuses; ``status`` is the HTTP status the API answers."""

    status = 400


class PolicyNotFound(PolicyStoreError):
    status = 404


class PolicyConflict(PolicyStoreError):
    status = 409


class InvalidRequest(PolicyStoreError):
    status = 422


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

    def status(self, policy_id: int) -> str:
        """``active``, ``split`` or ``inactive``."""
        if policy_id == self.active.id:
            return "active"
        return "split" if self.split is not None and policy_id == self.split.id else "inactive"


# --- versions ------------------------------------------------------------------------


def apply_policy(
    session: Session, text: str, actor: Actor | str, *, origin: str = "(applied text)"
) -> StoredPolicy:
    """Validate and store a version (not activated); the identical text again is a no-op.

    Raises ``PolicyError`` (invalid; ``origin`` names the text in its message) or
    ``PolicyConflict`` (other text, same name and version). On an empty database the
    default policy is installed first, so a version applied there never takes its place.
    """
    policy = parse_policy(text, source=origin)
    _check_templates(policy, origin)
    current_activation(session)
    return _store_version(session, policy, text, actor)


def _check_templates(policy: Policy, origin: str) -> None:
    """Every email step must name a template that exists, or ops would learn it from a log."""
    from dunning.notify.render import TEMPLATES

    unknown = [
        f"email_steps.{i}.template: no email template {step.template!r} (known: "
        f"{', '.join(TEMPLATES)})"
        for i, step in enumerate(policy.email_steps)
        if step.template not in TEMPLATES
    ]
    if unknown:
        raise PolicyError(origin, unknown)


def _store_version(session: Session, policy: Policy, text: str, actor: Actor | str) -> StoredPolicy:
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
    record_audit(session, actor, "policy.apply", "retry_policy", row.id, details)
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


# --- activation ----------------------------------------------------------------------


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
        .where(a.c.id == _SINGLETON)
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
        .values(id=_SINGLETON, active_policy_id=policy.id, split_percent=0, updated_by=name)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(table(PolicyActivation).c.id)
    )
    if session.execute(stmt).scalar_one_or_none() is None:
        return False
    details = {**policy.ref(), "previous": None}
    record_audit(session, actor, "policy.activate", "retry_policy", policy.id, details)
    return True


def install_default(session: Session, path: Path = DEFAULT_POLICY_FILE) -> Activation:
    """On an empty database: store and activate the default policy, audited as ``system``."""
    text = path.read_text(encoding="utf-8")
    stored = _store_version(session, parse_policy(text, source=str(path)), text, SYSTEM)
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
        .where(PolicyActivation.id == _SINGLETON)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.scalars(stmt).one()


def _touch(row: PolicyActivation, actor: Actor | str) -> None:
    row.updated_at = func.now()
    row.updated_by = actor_name(actor)


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
        "split_cleared": None
        if before.split is None
        else {**before.split.ref(), "percent": before.split_percent},
    }
    record_audit(session, actor, "policy.activate", "retry_policy", target.id, details)
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
        "previous": None
        if before.split is None
        else {**before.split.ref(), "percent": before.split_percent},
    }
    record_audit(session, actor, "policy.split", "retry_policy", target.id, details)
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
    details = {**before.split.ref(), "percent": before.split_percent}
    record_audit(session, actor, "policy.split_clear", "retry_policy", before.split.id, details)
    return current_activation(session)


# --- what the case engine asks -------------------------------------------------------


def split_bucket(customer_id: str, salt: str) -> int:
    """0..99 from SHA-256 of the salt and customer id: the same on every process and run."""
    digest = hashlib.sha256(f"{salt}\x00{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def in_split_arm(customer_id: str, split: StoredPolicy, percent: int) -> bool:
    """Whether a customer falls in the B arm; raising ``percent`` only adds customers."""
    return split_bucket(customer_id, f"{split.name}:{split.version}") < percent


def active_policy(session: Session) -> tuple[int, Policy]:
    """The active policy's id and model (the default policy on an empty database)."""
    active = current_activation(session).active
    return active.id, active.policy


def policy_for_customer(session: Session, customer_id: str | None) -> tuple[int, Policy]:
    """The policy a new case of this customer gets: the split arm for a stable
    ``split_percent`` % of customers, else the active one. Record the id on the case."""
    activation = current_activation(session)
    split = activation.split
    if (
        split is not None
        and customer_id
        and in_split_arm(customer_id, split, activation.split_percent)
    ):
        return split.id, split.policy
    return activation.active.id, activation.active.policy


def policy_by_id(session: Session, policy_id: int) -> Policy:
    """The model of a stored version (a case keeps the policy it opened with)."""
    return get_policy_by_id(session, policy_id).policy


# --- preview ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Hypothetical:
    """A made-up first failure to preview a policy against."""

    decline_code: str | None = None
    failure_code: str | None = None
    advice_code: str | None = None
    network_advice_code: str | None = None
    network_decline_code: str | None = None
    card_brand: str | None = None
    amount: int = 4900
    currency: str = "usd"
    time_zone: str = "UTC"
    failed_at: datetime | None = None  # None: now; naive: UTC


def zone(name: str) -> ZoneInfo:
    """A time zone by IANA name; a readable error rather than the engine's UTC fallback."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidRequest(
            f"unknown time zone {name!r} (use an IANA name like 'America/New_York')"
        ) from None


def as_utc(t: datetime) -> datetime:
    """An aware UTC instant; a naive time is taken as UTC."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def preview(policy: Policy, failure: Hypothetical) -> list[Decision]:
    """The schedule the engine would follow, every retry failing like the first."""
    zone(failure.time_zone)
    at = as_utc(failure.failed_at or datetime.now(UTC))
    brand = failure.card_brand.lower() if failure.card_brand else None
    first = Attempt(
        at=at,
        amount=failure.amount,
        currency=failure.currency.lower(),
        decline_code=failure.decline_code,
        failure_code=failure.failure_code,
        network_decline_code=failure.network_decline_code,
        advice_code=failure.advice_code,
        network_advice_code=failure.network_advice_code,
        card_brand=brand,
    )
    return simulate(policy, first, time_zone=failure.time_zone, card_brand=brand)


def policy_to_preview(
    session: Session,
    *,
    name: str | None = None,
    version: int | None = None,
    source: str | None = None,
) -> tuple[StoredPolicy | None, Policy]:
    """Inline text (not stored), a stored version, or else the active policy."""
    if source is not None:
        if name is not None or version is not None:
            raise InvalidRequest("give either an inline source or a name and version, not both")
        return None, parse_policy(source, source="(inline policy)")
    if name is None:
        if version is not None:
            raise InvalidRequest("a version needs a name")
        stored = current_activation(session).active
    else:
        stored = get_policy(session, name, version)
    return stored, stored.policy
