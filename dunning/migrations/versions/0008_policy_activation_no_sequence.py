"""policy_activation.id: no sequence

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24

0002 created the singleton's ``id`` as a SMALLSERIAL, so the database had a sequence and
a ``nextval`` default the model never declared (the row is always ``id = 1``, set by the
code and pinned by ``ck_policy_activation_singleton``). Dropping them makes the migrated
schema equal to the models, which ``tests/test_schema.py`` checks.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | tuple[str, ...] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE policy_activation ALTER COLUMN id DROP DEFAULT")
    op.execute("DROP SEQUENCE IF EXISTS policy_activation_id_seq")


def downgrade() -> None:
    op.execute("CREATE SEQUENCE policy_activation_id_seq AS smallint OWNED BY policy_activation.id")
    op.execute(
        "ALTER TABLE policy_activation ALTER COLUMN id "
        "SET DEFAULT nextval('policy_activation_id_seq'::regclass)"
    )
