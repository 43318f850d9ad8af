"""the first failure's decline code and card brand, stored on the case

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03

The decline-code and card-brand breakdowns group the cohort by its first failed charge.
Looking that charge up for each case cost a million index probes at a year's cohort
(about two seconds of the dashboard); stored on the case (``cases.service`` keeps them
up to date as attempts arrive), they are grouped in the cohort's one shared scan.
Existing cases are filled here with the definition the reports read until now: the
invoice's first failed charge by time, then id; its decline code, else its failure code.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | tuple[str, ...] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = """
    UPDATE dunning_cases c
    SET first_decline_code = ff.decline_code, first_card_brand = ff.card_brand
    FROM (
        SELECT DISTINCT ON (a.invoice_id) a.invoice_id,
               coalesce(a.decline_code, a.failure_code) AS decline_code, a.card_brand
        FROM charge_attempts a
        WHERE a.outcome = 'failed' AND a.invoice_id IS NOT NULL
        ORDER BY a.invoice_id, a.attempted_at, a.id
    ) ff
    WHERE ff.invoice_id = c.invoice_id
"""


def upgrade() -> None:
    op.add_column("dunning_cases", sa.Column("first_decline_code", sa.String(64)))
    op.add_column("dunning_cases", sa.Column("first_card_brand", sa.String(32)))
    op.execute(BACKFILL)


def downgrade() -> None:
    op.drop_column("dunning_cases", "first_card_brand")
    op.drop_column("dunning_cases", "first_decline_code")
