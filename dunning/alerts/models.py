"""One row per alert condition: whether it fires, since when, and what was sent.

Why a row per condition: "told once until it clears" must hold across beat runs,
several beats and worker crashes, so the state lives in Postgres, locked while it
changes; each firing is an ``episode`` and is sent once per channel.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from dunning.db import Base
from dunning.scheduler.models import ScheduledAction


class AlertState(Base):
    """An alert condition: firing or clear, the current episode and its delivery."""

    __tablename__ = "alert_states"

    condition: Mapped[str] = mapped_column(String(64), primary_key=True)
    firing: Mapped[bool] = mapped_column(Boolean, server_default="false")
    episode: Mapped[int] = mapped_column(Integer, server_default="0")  # firings so far
    summary: Mapped[str] = mapped_column(Text, server_default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    fired_at: Mapped[datetime | None]
    cleared_at: Mapped[datetime | None]
    checked_at: Mapped[datetime | None]
    email_sent_at: Mapped[datetime | None]
    webhook_sent_at: Mapped[datetime | None]
    sending_until: Mapped[datetime | None]  # a sender's lease on this episode's delivery
    send_error: Mapped[str | None] = mapped_column(Text)


# The failed-actions check reads recent failures only; without this index it would scan
# every action ever planned, every few minutes.
FAILED_ACTIONS_INDEX = Index(
    "ix_scheduled_actions_failed",
    ScheduledAction.completed_at,
    postgresql_where=text("status = 'failed'"),
)
