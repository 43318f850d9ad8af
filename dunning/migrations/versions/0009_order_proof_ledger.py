"""Order-proof facts: a charge's own time, the newest invoice.upcoming

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02

``charge_attempts.timed_by_charge`` says the row's time and source came from the
charge itself (``charge.*``), which wins over an invoice event's, whatever the order;
``subscriptions.upcoming_version`` lets the newest ``invoice.upcoming`` win;
``dunning_cases.decline_class`` is the class of the case's last failed attempt, a fact
of the ledger (the latest decision's class depended on the order events came in);
``scheduled_actions.crashes`` counts dispatches in a row whose worker died.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | tuple[str, ...] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "charge_attempts",
        sa.Column("timed_by_charge", sa.Boolean(), server_default="false", nullable=False),
    )
    op.add_column("subscriptions", sa.Column("upcoming_version", sa.BigInteger(), nullable=True))
    op.add_column("dunning_cases", sa.Column("decline_class", sa.String(32), nullable=True))
    op.add_column(
        "scheduled_actions",
        sa.Column("crashes", sa.Integer(), server_default="0", nullable=False),
    )
    op.execute(
        """
        UPDATE dunning_cases c SET decline_class = (
            SELECT d.decline_class FROM case_decisions d
            WHERE d.case_id = c.id AND d.decline_class IS NOT NULL
            ORDER BY d.id DESC LIMIT 1)
        """
    )


def downgrade() -> None:
    op.drop_column("scheduled_actions", "crashes")
    op.drop_column("dunning_cases", "decline_class")
    op.drop_column("subscriptions", "upcoming_version")
    op.drop_column("charge_attempts", "timed_by_charge")
