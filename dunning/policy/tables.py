"""The policy store's tables: immutable versions and the one activation row.

Why Postgres: a case records the policy version that decides it, so every version stays
readable for explanation and rollback, and every web and worker process must agree on
one active choice (a singleton ``policy_activation`` row).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from dunning.db import Base

ACTIVATION_ROW = 1
"""The id of the only ``policy_activation`` row."""


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

    id: Mapped[int] = mapped_column(
        SmallInteger, primary_key=True, autoincrement=False, default=ACTIVATION_ROW
    )
    active_policy_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("retry_policies.id"))
    split_policy_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("retry_policies.id"))
    split_percent: Mapped[int] = mapped_column(SmallInteger, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_by: Mapped[str] = mapped_column(String(255))
