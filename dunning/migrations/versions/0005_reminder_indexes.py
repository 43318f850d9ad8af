"""indexes for the renewal-reminder and card-expiring scan

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23

The scan (dunning/notify/reminders.py) runs every few minutes and must cost what is
close to renewal or expiry, not the size of the ledger: two partial range indexes.
The notifications table itself was created by 0004.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Live subscriptions by their next renewal.
    op.create_index(
        "ix_subscriptions_renewal",
        "subscriptions",
        ["current_period_end"],
        postgresql_where=sa.text("status IN ('active', 'trialing')"),
    )
    # Attached cards by expiry month.
    op.create_index(
        "ix_payment_methods_expiry",
        "payment_methods",
        ["exp_year", "exp_month"],
        postgresql_where=sa.text("NOT detached"),
    )


def downgrade() -> None:
    op.drop_index("ix_payment_methods_expiry", table_name="payment_methods")
    op.drop_index("ix_subscriptions_renewal", table_name="subscriptions")
