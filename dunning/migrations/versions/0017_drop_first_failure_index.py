"""drop the first-failure index of charge attempts

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02

The reports read a case's first failed charge from the case itself now (0016), so
``ix_charge_attempts_first_failure`` serves no query and only costs a write on every
charge attempt.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | tuple[str, ...] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_charge_attempts_first_failure", table_name="charge_attempts")


def downgrade() -> None:
    op.create_index(
        "ix_charge_attempts_first_failure",
        "charge_attempts",
        ["invoice_id", "attempted_at", "id"],
        postgresql_include=["decline_code", "failure_code", "card_brand"],
        postgresql_where=sa.text("outcome = 'failed'"),
    )
