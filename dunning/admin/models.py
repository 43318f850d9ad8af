"""Tables of the admin feature: API keys (stored hashed) and the audit log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from dunning.db import Base


class Role(StrEnum):
    """Values of ``ApiKey.role``: ``ops`` can change things, ``finance`` can read."""

    OPS = "ops"
    FINANCE = "finance"


ROLES: tuple[Role, ...] = tuple(Role)


class ApiKey(Base):
    """An API key; only its SHA-256 is kept, so a leaked table grants no access."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint("role IN ('ops', 'finance')", name="ck_api_keys_role"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    key_prefix: Mapped[str] = mapped_column(String(32))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    revoked_at: Mapped[datetime | None]


class AuditEntry(Base):
    """One ops change: who did what to which object, written in the change's transaction."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_target", "target_type", "target_id"),
        Index("ix_audit_log_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
