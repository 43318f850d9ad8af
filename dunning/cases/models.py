"""Dunning cases: one per invoice whose charge failed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from dunning.db import Base


class CaseState:
    """Values of ``DunningCase.state``; every state but ``open`` is closed."""

    OPEN = "open"
    RECOVERED = "recovered"
    VOIDED = "voided"
    UNCOLLECTIBLE = "uncollectible"
    CANCELED = "canceled"

    CLOSED = (RECOVERED, VOIDED, UNCOLLECTIBLE, CANCELED)


class RecoveredBy:
    """Who paid a recovered invoice."""

    RETRY = "retry"
    PROCESSOR = "processor"
    CUSTOMER = "customer"
    CARD_UPDATER = "card_updater"


class DunningCase(Base):
    """The recovery effort for one failed invoice, from first failure to outcome."""

    __tablename__ = "dunning_cases"
    __table_args__ = (
        Index("ix_dunning_cases_open", "opened_at", postgresql_where=text("state = 'open'")),
        Index("ix_dunning_cases_customer", "customer_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[str | None] = mapped_column(String(255))
    subscription_id: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    policy_version: Mapped[int | None]
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    recovered_amount: Mapped[int | None] = mapped_column(BigInteger)
    recovered_by: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())
