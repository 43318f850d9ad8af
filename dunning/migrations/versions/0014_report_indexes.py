"""indexes for reports at 1,000,000 cases

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02

Found with EXPLAIN ANALYZE on ``bench/reports.py`` (12 months, 1,000,000 cases):

- ``ix_invoices_not_cycle``: the invoices not billed for a cycle. The failed renewals are
  the cohort less its cases whose invoice is no renewal, found here instead of probing
  the invoice of every case (a million probes for a year).
- ``ix_invoices_paid_renewals``: paid renewal invoices by ``paid_at``, with what the
  failure rate's denominator reads, so that count is an index-only scan.
- ``ix_dunning_cases_churned`` now includes the subscription and state: churn reads the
  index alone.
- ``ix_notifications_sms``: the SMS sent, by case, for the channel report.
- ``ix_charge_attempts_first_failure``: a case's first failed charge in the order the
  breakdowns read it (time, then id), with its decline code and card brand: one
  index-only probe per case instead of a heap read and a sort.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | tuple[str, ...] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOT_CYCLE = "billing_reason <> 'subscription_cycle' OR billing_reason IS NULL"
PAID_RENEWAL = (
    "status = 'paid' AND subscription_id IS NOT NULL"
    " AND (billing_reason = 'subscription_cycle' OR billing_reason IS NULL)"
    " AND coalesce(amount_paid, amount_due, 0) > 0"
)
CHURNED = "end_action = 'cancel_subscription'"


def upgrade() -> None:
    op.create_index(
        "ix_invoices_not_cycle", "invoices", ["id"], postgresql_where=sa.text(NOT_CYCLE)
    )
    op.create_index(
        "ix_invoices_paid_renewals",
        "invoices",
        ["paid_at"],
        postgresql_include=["id", "currency", "customer_id"],
        postgresql_where=sa.text(PAID_RENEWAL),
    )
    op.drop_index("ix_dunning_cases_churned", table_name="dunning_cases")
    op.create_index(
        "ix_dunning_cases_churned",
        "dunning_cases",
        ["closed_at"],
        postgresql_include=["subscription_id", "state"],
        postgresql_where=sa.text(CHURNED),
    )
    op.create_index(
        "ix_charge_attempts_first_failure",
        "charge_attempts",
        ["invoice_id", "attempted_at", "id"],
        postgresql_include=["decline_code", "failure_code", "card_brand"],
        postgresql_where=sa.text("outcome = 'failed'"),
    )
    op.create_index(
        "ix_notifications_sms",
        "notifications",
        ["case_id"],
        postgresql_where=sa.text("channel = 'sms' AND status = 'sent'"),
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_sms", table_name="notifications")
    op.drop_index("ix_charge_attempts_first_failure", table_name="charge_attempts")
    op.drop_index("ix_dunning_cases_churned", table_name="dunning_cases")
    op.create_index(
        "ix_dunning_cases_churned",
        "dunning_cases",
        ["closed_at"],
        postgresql_where=sa.text(CHURNED),
    )
    op.drop_index("ix_invoices_paid_renewals", table_name="invoices")
    op.drop_index("ix_invoices_not_cycle", table_name="invoices")
