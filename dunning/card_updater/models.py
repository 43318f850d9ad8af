"""The card-updater calls: one row per question asked of a provider, with its answer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from dunning.db import Base


class CardUpdaterRequest(Base):
    """One call: which card, why, when, what the provider answered and what changed.

    ``changes`` holds the before/after of what moved (``card``, ``expiry``); the rows
    are what ops read on a case and what the reports count (calls, hits)."""

    __tablename__ = "card_updater_requests"
    __table_args__ = (
        Index("ix_card_updater_requests_case", "case_id", "asked_at"),
        Index("ix_card_updater_requests_card", "payment_method_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    case_id: Mapped[int | None] = mapped_column(BigInteger)
    action_id: Mapped[int | None] = mapped_column(BigInteger)
    customer_id: Mapped[str | None] = mapped_column(String(255))
    payment_method_id: Mapped[str | None] = mapped_column(String(255))  # the card asked about
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(32))
    asked_at: Mapped[datetime]
    result: Mapped[str] = mapped_column(String(32))
    new_payment_method_id: Mapped[str | None] = mapped_column(String(255))
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
