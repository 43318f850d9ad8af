"""The scheduled-actions table: every retry, email and end action the cases plan."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from dunning.db import Base


class ActionStatus(StrEnum):
    """Life of an action: pending -> claimed (task sent) -> running (effect started) -> done.

    ``canceled`` when its case no longer needs it; ``failed`` when it gave up.
    """

    PENDING = "pending"
    CLAIMED = "claimed"
    RUNNING = "running"
    DONE = "done"
    CANCELED = "canceled"
    FAILED = "failed"


LEASED = (ActionStatus.CLAIMED, ActionStatus.RUNNING)


class ActionKind(StrEnum):
    """What an action does when it is due; each kind has one handler (docs/architecture.md)."""

    RETRY_CHARGE = "retry_charge"  # dunning.cases.retry
    END_ACTION = "end_action"  # dunning.cases.retry
    SEND_EMAIL = "send_email"  # dunning.notify.delivery
    FETCH_CARD = "fetch_card"  # planned by dunning.cases.card_fetch, run by dunning.card_updater
    CHECK_CARD = "check_card"  # dunning.card_updater
    RESUME_SUBSCRIPTION = "resume_subscription"  # dunning.cases.retry, after a paused case is paid


class ScheduledAction(Base):
    """One planned effect, unique by its dedupe key (e.g. ``case:12:retry:3``)."""

    __tablename__ = "scheduled_actions"
    __table_args__ = (
        Index("ix_scheduled_actions_due", "due_at", postgresql_where=text("status = 'pending'")),
        Index(
            "ix_scheduled_actions_leased",
            "lease_expires_at",
            postgresql_where=text("status IN ('claimed', 'running')"),
        ),
        Index("ix_scheduled_actions_case", "case_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    case_id: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), server_default=ActionStatus.PENDING)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")  # dispatches so far
    crashes: Mapped[int] = mapped_column(Integer, server_default="0")  # lease expired, in a row
    started_attempt: Mapped[int | None] = mapped_column(Integer)
    processor_ref: Mapped[str | None] = mapped_column(Text)
    lease_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    completed_at: Mapped[datetime | None]
    result: Mapped[str | None] = mapped_column(Text)
