"""Recovery paths and exact churn

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02

- ``subscriptions.start_date``: the subscription's real start (Stripe's ``start_date``,
  else ``created``), so "active at the period's start" in involuntary churn is exact.
- ``subscriptions.pause_behavior``: Stripe's ``pause_collection.behavior`` while
  collection is paused (``void``, ``keep_as_draft``, ``mark_uncollectible``), else null.
- ``customers.phone``: the number SMS notices go to, from the Stripe customer.
- ``notifications.channel``: ``email`` or ``sms``; both share the dedupe and claim rules.
- ``sms_opt_outs``: numbers that replied STOP (and START again), keyed by number, since
  a reply names a number, not a customer.
- ``dunning_cases.awaiting_action_since``: the renewal needs the customer to authenticate
  (3-D Secure); no off-session retry is made while it is set.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | tuple[str, ...] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("subscriptions", sa.Column("start_date", sa.DateTime(timezone=True)))
    op.add_column("subscriptions", sa.Column("pause_behavior", sa.String(length=32)))
    op.add_column("customers", sa.Column("phone", sa.String(length=32)))
    op.add_column(
        "notifications",
        sa.Column("channel", sa.String(length=8), server_default="email", nullable=False),
    )
    op.add_column("dunning_cases", sa.Column("awaiting_action_since", sa.DateTime(timezone=True)))
    op.create_table(
        "sms_opt_outs",
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message_id", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("phone"),
    )


def downgrade() -> None:
    op.drop_table("sms_opt_outs")
    op.drop_column("dunning_cases", "awaiting_action_since")
    op.drop_column("notifications", "channel")
    op.drop_column("customers", "phone")
    op.drop_column("subscriptions", "pause_behavior")
    op.drop_column("subscriptions", "start_date")
