"""Dunning cases: one per invoice whose charge failed."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from dunning.db import Base


class CaseState(StrEnum):
    """Values of ``DunningCase.state``; every state but ``open`` is closed."""

    OPEN = "open"
    RECOVERED = "recovered"
    VOIDED = "voided"
    UNCOLLECTIBLE = "uncollectible"
    CANCELED = "canceled"
    EXHAUSTED = "exhausted"  # the policy gave up and left the invoice past due
    PAUSED = "paused"  # the policy gave up and paused collection; a payment resumes it


class RecoveredBy(StrEnum):
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
        # Reports: the cohort of cases opened in a period.
        Index("ix_dunning_cases_opened_at", "opened_at"),
        # Reports: involuntary churn, cases that canceled the subscription, by end time.
        Index(
            "ix_dunning_cases_churned",
            "closed_at",
            postgresql_include=["subscription_id", "state"],
            postgresql_where=text("end_action = 'cancel_subscription'"),
        ),
        # Reports: what they read of a case, in id order, to merge-join other tables.
        Index(
            "ix_dunning_cases_report",
            "id",
            postgresql_include=["opened_at", "currency", "state", "amount", "recovered_amount"],
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    invoice_id: Mapped[str] = mapped_column(String(255), unique=True)
    customer_id: Mapped[str | None] = mapped_column(String(255))
    subscription_id: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    policy_version: Mapped[int | None]
    policy_id: Mapped[int | None] = mapped_column(BigInteger)
    paused: Mapped[bool] = mapped_column(Boolean, server_default="false")
    end_action: Mapped[str | None] = mapped_column(String(32))
    decline_class: Mapped[str | None] = mapped_column(String(32))  # of the last failure
    # Of the first failed charge (by time, then id), kept with the case so the reports
    # group by them without looking that charge up: its decline code, else its failure code.
    first_decline_code: Mapped[str | None] = mapped_column(String(64))
    first_card_brand: Mapped[str | None] = mapped_column(String(32))
    # The renewal waits for the customer to authenticate (3-D Secure): no blind retries.
    awaiting_action_since: Mapped[datetime | None]
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    recovered_amount: Mapped[int | None] = mapped_column(BigInteger)
    recovered_by: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


class CaseDecision(Base):
    """Each decision of the engine for a case, with its reason: the case's timeline."""

    __tablename__ = "case_decisions"
    __table_args__ = (Index("ix_case_decisions_case", "case_id", "decided_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    case_id: Mapped[int] = mapped_column(BigInteger)
    decided_at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime | None]
    attempt_number: Mapped[int] = mapped_column(Integer)
    decline_class: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    policy_id: Mapped[int | None] = mapped_column(BigInteger)


class CaseEventKind(StrEnum):
    """What a customer (or a channel acting for them) did on a case."""

    LINK_OPENED = "link_opened"
    CARD_UPDATED = "card_updated"
    PAYMENT_ATTEMPTED = "payment_attempted"


class CaseEvent(Base):
    """A customer-side event on a case's timeline: link opened, card updated, paid.

    ``notification_id`` names the email whose link led here, for the funnel report.
    """

    __tablename__ = "case_events"
    __table_args__ = (
        Index("ix_case_events_case", "case_id", "at"),
        # Reports: the email funnel, customer events reached through an email.
        Index(
            "ix_case_events_notification",
            "notification_id",
            "kind",
            postgresql_where=text("notification_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    case_id: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    notification_id: Mapped[int | None] = mapped_column(BigInteger)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
