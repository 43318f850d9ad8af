"""indexes for the finance reports

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-23

Why indexes and no rollup table: every report is a range over one time column of one
table (cases by ``opened_at``, churn by ``closed_at``, first-time renewals by
``paid_at``) plus index probes for a few joins. With these indexes the headline report of
a month over 1,000,000 cases and 5,000,000 charge attempts answers in about 1 s (see
``bench/reports.py``), and the numbers are always current: a rollup would have to be
kept in step with every case-state change the engine makes, and a late or reordered
event would make it drift.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The cohort of every recovery metric: cases opened in the period.
    op.create_index("ix_dunning_cases_opened_at", "dunning_cases", ["opened_at"])
    # Involuntary churn: cases that ended by canceling the subscription, by end time.
    op.create_index(
        "ix_dunning_cases_churned",
        "dunning_cases",
        ["closed_at"],
        postgresql_where=sa.text("end_action = 'cancel_subscription'"),
    )
    # Failure-rate denominator: subscription invoices paid in the period.
    op.create_index(
        "ix_invoices_subscription_paid_at",
        "invoices",
        ["paid_at"],
        postgresql_where=sa.text("subscription_id IS NOT NULL"),
    )
    # Active subscriptions at a date: did the subscription have an invoice before it?
    op.create_index(
        "ix_invoices_subscription_created", "invoices", ["subscription_id", "processor_created"]
    )
    # Email funnel: customer events reached through an email.
    op.create_index(
        "ix_case_events_notification",
        "case_events",
        ["notification_id", "kind"],
        postgresql_where=sa.text("notification_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_case_events_notification", table_name="case_events")
    op.drop_index("ix_invoices_subscription_created", table_name="invoices")
    op.drop_index("ix_invoices_subscription_paid_at", table_name="invoices")
    op.drop_index("ix_dunning_cases_churned", table_name="dunning_cases")
    op.drop_index("ix_dunning_cases_opened_at", table_name="dunning_cases")
