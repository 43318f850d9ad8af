"""The rollup of settled months: the cohort of each month, grouped once, kept.

Why: a year of the dashboard scans a million cases for counts that, for a month whose
dunning is long over, rarely change. A month's rows here are the live query's own
output for that month (``reports.rollup`` builds them with the SQL of
``metrics.cohort`` and ``metrics.recovery``), never figures kept up to date by hand.

Why they cannot drift: a trigger on ``dunning_cases`` deletes a month's row (and so,
by cascade, its groups and recoveries) in the same transaction as any change to a case
opened in that month (more than 12 hours ago: no month that recent is ever rolled
up), so no snapshot sees a rollup row next to a case it does not count. A change and a
build of the same month never overlap: the trigger holds a shared advisory lock on each
month it touches until its transaction ends, and a build takes that lock exclusively
(``ROLLUP_LOCK``) before it reads. Writers must run at ``READ COMMITTED`` (as every
writer here does): the trigger's delete must see a build committed while it waited.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import DDL, BigInteger, Date, Float, ForeignKey, Integer, String, event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from dunning.db import Base

ROLLUP_LOCK = 1_380_928_596
"""The first key of the advisory locks on a month of the rollup (the second is the
month: ``year * 12 + month - 1``)."""

_CASCADE = "CASCADE"


class ReportCohortMonth(Base):
    """A settled month whose rollup is built: the rows below are its cohort."""

    __tablename__ = "report_cohort_months"

    month: Mapped[date] = mapped_column(Date, primary_key=True)
    built_at: Mapped[datetime]


class ReportCohortGroup(Base):
    """The month's cases grouped by every key of a case the reports group by
    (``metrics.cohort.ROLLED``), with the cohort's counts and amounts."""

    __tablename__ = "report_cohort_groups"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    month: Mapped[date] = mapped_column(
        Date, ForeignKey("report_cohort_months.month", ondelete=_CASCADE), index=True
    )
    currency: Mapped[str | None] = mapped_column(String(3))
    day: Mapped[int | None] = mapped_column(Integer)
    channel: Mapped[str | None] = mapped_column(String(32))
    policy_id: Mapped[int | None] = mapped_column(BigInteger)
    decline_class: Mapped[str | None] = mapped_column(String(32))
    decline_code: Mapped[str | None] = mapped_column(String(64))
    card_brand: Mapped[str | None] = mapped_column(String(32))
    cases_opened: Mapped[int] = mapped_column(BigInteger)
    cases_closed: Mapped[int] = mapped_column(BigInteger)
    cases_recovered: Mapped[int] = mapped_column(BigInteger)
    failed_amount: Mapped[int] = mapped_column(BigInteger)
    closed_failed_amount: Mapped[int] = mapped_column(BigInteger)
    recovered_amount: Mapped[int] = mapped_column(BigInteger)


class ReportCohortRecovery(Base):
    """The seconds to recovery of the month's recovered cases, per currency (``xxx``
    for none): the percentiles of a period are taken over these and the live rest."""

    __tablename__ = "report_cohort_recoveries"

    month: Mapped[date] = mapped_column(
        Date, ForeignKey("report_cohort_months.month", ondelete=_CASCADE), primary_key=True
    )
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    seconds: Mapped[list[float]] = mapped_column(ARRAY(Float(precision=53)))


# The trigger, a row at a time, only for cases opened more than FRESH ago: the cases of
# a renewal day (opened minutes ago, changed again and again while their first actions
# are planned) never pay for it, and no month that recent is ever rolled up
# (``reports.rollup`` builds a month only once it ended a day before the database's
# clock: a writer's transaction would have to last half a day to slip between them). It
# locks the months of the case (before and after) shared and deletes their rollup rows.
# An update that changes nothing the reports read (a scheduling field) leaves the
# month's rollup alone.
FRESH = "12 hours"
REPORTED = (
    "opened_at, closed_at, state, amount, currency, recovered_amount, recovered_by,"
    " policy_id, decline_class, first_decline_code, first_card_brand"
)
TRIGGER_FUNCTION = f"""
CREATE FUNCTION report_cohort_changed() RETURNS trigger LANGUAGE plpgsql AS $$
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
            {ROLLUP_LOCK}, (extract(year FROM m) * 12 + extract(month FROM m) - 1)::int);
    END LOOP;
    DELETE FROM report_cohort_months WHERE month = ANY(months);
    RETURN NULL;
END $$"""
_OLD = f"OLD.opened_at < now() - interval '{FRESH}'"
_NEW = f"NEW.opened_at < now() - interval '{FRESH}'"
_CHANGED = (
    f"(OLD.{REPORTED.replace(', ', ', OLD.')}) IS DISTINCT FROM"
    f" (NEW.{REPORTED.replace(', ', ', NEW.')})"
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
# A database made from the models (tests, ``create_all``) gets the trigger too.
for _sql in (TRIGGER_FUNCTION, *TRIGGERS):
    event.listen(Base.metadata, "after_create", DDL(_sql))
