"""Every email the service sends or decided not to send, unique by its dedupe key."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from dunning.db import Base


class NotificationStatus(StrEnum):
    """claimed (row written before the send) -> sent | failed | skipped | unknown."""

    CLAIMED = "claimed"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"  # its worker died mid-send and the case no longer needs it


class NotificationKind(StrEnum):
    """What an email is about (``notifications.kind``)."""

    DUNNING = "dunning"  # a step of a dunning case
    RENEWAL = "renewal"  # a renewal reminder
    CARD_EXPIRING = "card_expiring"  # the card expires before the next renewal


class Notification(Base):
    """One email: claimed before the send and marked sent after (docs/architecture.md).

    ``dedupe_key`` is the key of the ``send_email`` action that sends it:
    ``case:<id>:email:<step>`` (step: the policy step's index, ``final``,
    ``action_required``, ``recovered``, ``canceled``),
    ``renewal:<subscription>:<renewal date>:<days before>`` or
    ``card_expiring:<payment method>:<YYYY-MM>:<days before>``.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_case", "case_id"),
        Index("ix_notifications_customer", "customer_id"),
        # Reports: the SMS sent about each case (the channel table's sms row).
        Index(
            "ix_notifications_sms",
            "case_id",
            postgresql_where=text("channel = 'sms' AND status = 'sent'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(8), server_default="email")  # email | sms
    template: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(16))
    recipient: Mapped[str | None] = mapped_column(String(320))
    case_id: Mapped[int | None] = mapped_column(BigInteger)
    customer_id: Mapped[str | None] = mapped_column(String(255))
    subscription_id: Mapped[str | None] = mapped_column(String(255))
    step: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), server_default=NotificationStatus.CLAIMED)
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_id: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    sent_at: Mapped[datetime | None]


class SmsOptOut(Base):
    """A number that replied STOP (opted_out) or START again; keyed by number, as replies are."""

    __tablename__ = "sms_opt_outs"

    phone: Mapped[str] = mapped_column(String(32), primary_key=True)
    opted_out: Mapped[bool] = mapped_column(Boolean)
    changed_at: Mapped[datetime]
    message_id: Mapped[str | None] = mapped_column(String(64))
