"""API keys: created once in plaintext, stored as SHA-256, looked up by that hash.

Why a hash and no prefix lookup: a copy of the table grants nothing, and a request is
matched by one indexed equality on the hash, so response time says nothing about how
much of a guessed key was right.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dunning.admin.actors import SYSTEM, Actor, cli_actor
from dunning.admin.audit import record_audit
from dunning.admin.models import ROLES, ApiKey, Role
from dunning.db import table

_ALPHABET = string.ascii_letters + string.digits
_RANDOM_CHARS = 40  # ~238 bits
_SHOWN_RANDOM_CHARS = 8
_MAX_KEY_LENGTH = 200
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")


class ApiKeyError(ValueError):
    """A key that cannot be created or revoked as asked."""


class KeyAudit(StrEnum):
    """What key changes write in the audit log (the whole set: keys change only so)."""

    CREATE = "api_key.create"
    REVOKE = "api_key.revoke"


def hash_key(key: str) -> str:
    """SHA-256 hex of the whole key: what is stored and looked up."""
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """What lists show: ``dk_<role>_`` and the first 8 random characters."""
    head, _, random_part = key.rpartition("_")
    return f"{head}_{random_part[:_SHOWN_RANDOM_CHARS]}"


def create_api_key(session: Session, name: str, role: str, *, actor: str | None = None) -> str:
    """Store a new key and return its plaintext, the only time it exists outside the caller.

    ``actor`` defaults to the OS user (``cli:<user>``): keys are made on the command line.
    """
    if role not in ROLES:
        raise ApiKeyError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if not _NAME.match(name) or name == SYSTEM:
        raise ApiKeyError(
            f"invalid key name {name!r}: lower-case letters, digits, '.', '_' or '-', "
            f"at most 64 characters, not {SYSTEM!r}"
        )
    key = f"dk_{role}_{''.join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_CHARS))}"
    stmt = (
        insert(table(ApiKey))
        .values(name=name, role=role, key_prefix=display_prefix(key), key_hash=hash_key(key))
        .on_conflict_do_nothing(index_elements=["name"])
        .returning(table(ApiKey).c.id)
    )
    key_id = session.execute(stmt).scalar_one_or_none()
    if key_id is None:
        raise ApiKeyError(f"an API key named {name!r} already exists (names are never reused)")
    details = {"name": name, "role": role, "key_prefix": display_prefix(key)}
    record_audit(session, actor or cli_actor(), KeyAudit.CREATE, "api_key", key_id, details)
    return key


def revoke_api_key(session: Session, name: str, *, actor: str | None = None) -> bool:
    """Revoke a key by name; ``False`` if it was already revoked (nothing changes then)."""
    row = session.scalars(select(ApiKey).where(ApiKey.name == name).with_for_update()).one_or_none()
    if row is None:
        raise ApiKeyError(f"no API key named {name!r}")
    if row.revoked_at is not None:
        return False
    row.revoked_at = session.scalar(select(func.now()))
    details = {"name": row.name, "role": row.role}
    record_audit(session, actor or cli_actor(), KeyAudit.REVOKE, "api_key", row.id, details)
    return True


def list_api_keys(session: Session) -> list[ApiKey]:
    """Every key, revoked ones included, oldest first."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def authenticate(session: Session, key: str) -> Actor | None:
    """The actor of a live key, or ``None`` for an unknown or revoked one."""
    if not key or len(key) > _MAX_KEY_LENGTH:
        return None
    row = session.scalars(
        select(ApiKey).where(ApiKey.key_hash == hash_key(key), ApiKey.revoked_at.is_(None))
    ).one_or_none()
    return None if row is None else Actor(key_id=row.id, name=row.name, role=Role(row.role))
