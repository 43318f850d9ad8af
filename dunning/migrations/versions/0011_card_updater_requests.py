"""Card-updater calls

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-12

``card_updater_requests`` holds one row per question asked of the card account
updater (card, reason, asked at, result, what changed), read by the reports and the
retry that follows a hit (``dunning/card_updater``).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | tuple[str, ...] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "card_updater_requests",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("case_id", sa.BigInteger(), nullable=True),
        sa.Column("action_id", sa.BigInteger(), nullable=True),
        sa.Column("customer_id", sa.String(length=255), nullable=True),
        sa.Column("payment_method_id", sa.String(length=255), nullable=True),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", sa.String(length=32), nullable=False),
        sa.Column("new_payment_method_id", sa.String(length=255), nullable=True),
        sa.Column(
            "changes",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_card_updater_requests_case", "card_updater_requests", ["case_id", "asked_at"]
    )
    op.create_index("ix_card_updater_requests_card", "card_updater_requests", ["payment_method_id"])


def downgrade() -> None:
    op.drop_index("ix_card_updater_requests_card", table_name="card_updater_requests")
    op.drop_index("ix_card_updater_requests_case", table_name="card_updater_requests")
    op.drop_table("card_updater_requests")
