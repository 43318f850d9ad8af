"""scheduled actions, case decisions, case controls

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scheduled_actions",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("case_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("dedupe_key", sa.String(255), nullable=False, unique=True),
        sa.Column("payload", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("started_attempt", sa.Integer(), nullable=True),
        sa.Column("processor_ref", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
    )
    op.create_index(
        "ix_scheduled_actions_due",
        "scheduled_actions",
        ["due_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_scheduled_actions_leased",
        "scheduled_actions",
        ["lease_expires_at"],
        postgresql_where=sa.text("status IN ('claimed', 'running')"),
    )
    op.create_index("ix_scheduled_actions_case", "scheduled_actions", ["case_id"])
    op.create_table(
        "case_decisions",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("case_id", sa.BigInteger(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempt_number", sa.Integer(), nullable=False),
        sa.Column("decline_class", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("policy_id", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_case_decisions_case", "case_decisions", ["case_id", "decided_at"])
    op.add_column("dunning_cases", sa.Column("policy_id", sa.BigInteger(), nullable=True))
    op.add_column(
        "dunning_cases",
        sa.Column("paused", sa.Boolean(), server_default="false", nullable=False),
    )
    op.add_column("dunning_cases", sa.Column("end_action", sa.String(32), nullable=True))
    op.add_column("processor_events", sa.Column("object_id", sa.String(255), nullable=True))
    op.create_index("ix_processor_events_object_id", "processor_events", ["object_id"])


def downgrade() -> None:
    op.drop_index("ix_processor_events_object_id", "processor_events")
    op.drop_column("processor_events", "object_id")
    op.drop_column("dunning_cases", "end_action")
    op.drop_column("dunning_cases", "paused")
    op.drop_column("dunning_cases", "policy_id")
    op.drop_table("case_decisions")
    op.drop_table("scheduled_actions")
