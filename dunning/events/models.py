"""The raw processor events: stored before anything else, kept for audit and replay."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from dunning.db import Base


class EventStatus(StrEnum):
    """Values of ``ProcessorEvent.status``."""

    PENDING = "pending"
    HANDLED = "handled"
    IGNORED = "ignored"
    FAILED = "failed"


class ProcessorEvent(Base):
    """One webhook delivery (or reconciler finding), deduplicated by the processor's id."""

    __tablename__ = "processor_events"
    __table_args__ = (
        UniqueConstraint("processor", "event_id", name="uq_processor_events_event"),
        Index(
            "ix_processor_events_unhandled",
            "received_at",
            postgresql_where=text("handled_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    processor: Mapped[str] = mapped_column(String(32))
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(128))
    object_id: Mapped[str | None] = mapped_column(String(255), index=True)
    livemode: Mapped[bool | None]
    processor_created: Mapped[int | None] = mapped_column(BigInteger)
    body: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(JSONB)
    source: Mapped[str] = mapped_column(String(32), server_default="webhook")
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
    status: Mapped[str] = mapped_column(String(16), server_default=EventStatus.PENDING)
    handled_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
