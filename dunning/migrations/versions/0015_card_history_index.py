"""index for a card's recent attempts

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02

The planner reads every recent attempt on the card a case would charge (the networks
count declines per card, across invoices). Without an index that read scanned all
charge attempts, once per decision: a renewal-day burst slowed down as it went.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | tuple[str, ...] | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_charge_attempts_card",
        "charge_attempts",
        ["card_fingerprint", "attempted_at"],
        postgresql_where=sa.text("card_fingerprint IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_charge_attempts_card", table_name="charge_attempts")
