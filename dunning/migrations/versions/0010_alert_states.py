"""Alert states for billing ops, and the index of recently failed actions

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-10

``alert_states`` holds one row per alert condition (webhook backlog, failed events,
failed actions, renewal failure rate, processor unreachable): whether it fires, the
episode, and when each channel was told, so an alert goes out once until it clears.
``ix_scheduled_actions_failed`` lets the failed-actions check read recent failures only.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | tuple[str, ...] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_states",
        sa.Column("condition", sa.String(length=64), nullable=False),
        sa.Column("firing", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("episode", sa.Integer(), server_default="0", nullable=False),
        sa.Column("summary", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("email_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("webhook_sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sending_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("send_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("condition"),
    )
    op.create_index(
        "ix_scheduled_actions_failed",
        "scheduled_actions",
        ["completed_at"],
        postgresql_where=sa.text("status = 'failed'"),
    )


def downgrade() -> None:
    op.drop_index("ix_scheduled_actions_failed", table_name="scheduled_actions")
    op.drop_table("alert_states")
