"""the rollup of settled months for the finance reports, kept by a trigger on the cases

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03

A year of the dashboard grouped a million cases on every view (``bench/reports.py``:
12 months 2.2-2.4 s on an idle machine, 4-5 s on a busy one). ``report_cohort_months``
marks a settled month whose cohort is kept, grouped (``report_cohort_groups``) and with
its seconds to recovery (``report_cohort_recoveries``); ``reports.rollup`` builds them
with the live query's own SQL. The trigger on ``dunning_cases`` deletes the month of any
case changed (its rows go by cascade) under a shared advisory lock on that month, which
a build takes exclusively: a rollup row is never older than the cases of its month.
It skips cases opened in the last 12 hours, whose months are never rolled up.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | tuple[str, ...] | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As in ``dunning/reports/models.py`` on the day of this migration: a row at a time, only
# for cases opened more than 12 hours ago.
TRIGGER_FUNCTION = """CREATE FUNCTION report_cohort_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    months date[];
    m date;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM report_cohort_months;
        RETURN NULL;
    ELSIF TG_OP = 'INSERT' THEN
        months := ARRAY[NEW.opened_at];
    ELSIF TG_OP = 'DELETE' THEN
        months := ARRAY[OLD.opened_at];
    ELSE
        months := ARRAY[OLD.opened_at, NEW.opened_at];
    END IF;
    months := ARRAY(SELECT DISTINCT date_trunc('month', t AT TIME ZONE 'UTC')::date
                    FROM unnest(months) t ORDER BY 1);
    FOREACH m IN ARRAY months LOOP
        PERFORM pg_advisory_xact_lock_shared(
            1380928596, (extract(year FROM m) * 12 + extract(month FROM m) - 1)::int);
    END LOOP;
    DELETE FROM report_cohort_months WHERE month = ANY(months);
    RETURN NULL;
END $$"""
_COLUMNS = (
    "opened_at, closed_at, state, amount, currency, recovered_amount, recovered_by,"
    " policy_id, decline_class, first_decline_code, first_card_brand"
)
_OLD = "OLD.opened_at < now() - interval '12 hours'"
_NEW = "NEW.opened_at < now() - interval '12 hours'"
_CHANGED = (
    f"(OLD.{_COLUMNS.replace(', ', ', OLD.')}) IS DISTINCT FROM"
    f" (NEW.{_COLUMNS.replace(', ', ', NEW.')})"
)
_ROW = " FOR EACH ROW WHEN ({}) EXECUTE FUNCTION report_cohort_changed()"
TRIGGERS = [
    "CREATE TRIGGER report_cohort_inserted AFTER INSERT ON dunning_cases" + _ROW.format(_NEW),
    "CREATE TRIGGER report_cohort_updated AFTER UPDATE ON dunning_cases"
    + _ROW.format(f"({_OLD} OR {_NEW}) AND {_CHANGED}"),
    "CREATE TRIGGER report_cohort_deleted AFTER DELETE ON dunning_cases" + _ROW.format(_OLD),
    "CREATE TRIGGER report_cohort_truncated AFTER TRUNCATE ON dunning_cases"
    " FOR EACH STATEMENT EXECUTE FUNCTION report_cohort_changed()",
]


def upgrade() -> None:
    op.create_table(
        "report_cohort_months",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("month"),
    )
    op.create_table(
        "report_cohort_groups",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("day", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("policy_id", sa.BigInteger(), nullable=True),
        sa.Column("decline_class", sa.String(length=32), nullable=True),
        sa.Column("decline_code", sa.String(length=64), nullable=True),
        sa.Column("card_brand", sa.String(length=32), nullable=True),
        sa.Column("cases_opened", sa.BigInteger(), nullable=False),
        sa.Column("cases_closed", sa.BigInteger(), nullable=False),
        sa.Column("cases_recovered", sa.BigInteger(), nullable=False),
        sa.Column("failed_amount", sa.BigInteger(), nullable=False),
        sa.Column("closed_failed_amount", sa.BigInteger(), nullable=False),
        sa.Column("recovered_amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["month"], ["report_cohort_months.month"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_report_cohort_groups_month", "report_cohort_groups", ["month"])
    op.create_table(
        "report_cohort_recoveries",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("seconds", sa.ARRAY(sa.Float(precision=53)), nullable=False),
        sa.ForeignKeyConstraint(["month"], ["report_cohort_months.month"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("month", "currency"),
    )
    op.execute(TRIGGER_FUNCTION)
    for trigger in TRIGGERS:
        op.execute(trigger)


def downgrade() -> None:
    for name in ("inserted", "updated", "deleted", "truncated"):
        op.execute(f"DROP TRIGGER report_cohort_{name} ON dunning_cases")
    op.execute("DROP FUNCTION report_cohort_changed()")
    op.drop_table("report_cohort_recoveries")
    op.drop_index("ix_report_cohort_groups_month", table_name="report_cohort_groups")
    op.drop_table("report_cohort_groups")
    op.drop_table("report_cohort_months")
