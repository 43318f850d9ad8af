"""indexes that let a year's reports merge-join by id instead of hashing a million cases

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02

Found with EXPLAIN ANALYZE on ``bench/reports.py`` (12 months, 1,000,000 cases, one
process each):

- ``ix_dunning_cases_report``: a case's id with what the reports that join other tables
  to the cohort read of it (opening time, currency, state, amounts). The card-updater
  calls, the SMS and the email funnel merge-join their rows to it in id order, index
  only, instead of scanning every case and hashing the join: 730 → 370 ms, 990 → 365 ms
  and 1,350 → 830 ms.
- ``ix_invoices_paid_renewal_ids``: paid renewals in id order, so "paid with no case"
  is a merge anti-join with the unique index of the cases' invoices instead of a hash of
  a million invoice ids: 1,540 → 600 ms for a year. A month still probes the cases per
  invoice through ``ix_invoices_paid_renewals``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | tuple[str, ...] | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAID_RENEWAL = (
    "status = 'paid' AND subscription_id IS NOT NULL"
    " AND (billing_reason = 'subscription_cycle' OR billing_reason IS NULL)"
    " AND coalesce(amount_paid, amount_due, 0) > 0"
)


def upgrade() -> None:
    op.create_index(
        "ix_dunning_cases_report",
        "dunning_cases",
        ["id"],
        postgresql_include=["opened_at", "currency", "state", "amount", "recovered_amount"],
    )
    op.create_index(
        "ix_invoices_paid_renewal_ids",
        "invoices",
        ["id"],
        postgresql_include=["paid_at", "currency", "customer_id"],
        postgresql_where=sa.text(PAID_RENEWAL),
    )


def downgrade() -> None:
    op.drop_index("ix_invoices_paid_renewal_ids", table_name="invoices")
    op.drop_index("ix_dunning_cases_report", table_name="dunning_cases")
