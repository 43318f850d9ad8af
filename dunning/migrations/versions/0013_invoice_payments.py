"""Invoice payments: link a payment intent to its invoice

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02

- ``invoice_payments``: Stripe's ``invoice_payment`` (payment intent -> invoice), since a
  ``charge`` of the current API names its payment intent but no longer its invoice.
- ``ix_charge_attempts_unlinked_intent``: the charges still waiting for that link.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | tuple[str, ...] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "invoice_payments",
        sa.Column("payment_intent_id", sa.String(length=255), nullable=False),
        sa.Column("invoice_id", sa.String(length=255), nullable=False),
        sa.Column("invoice_payment_id", sa.String(length=255), nullable=True),
        sa.Column(
            "recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("payment_intent_id"),
    )
    op.create_index(
        "ix_charge_attempts_unlinked_intent",
        "charge_attempts",
        ["payment_intent_id"],
        postgresql_where=sa.text("invoice_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_charge_attempts_unlinked_intent", table_name="charge_attempts")
    op.drop_table("invoice_payments")
