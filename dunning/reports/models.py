"""The rollup of settled months: each month's figures, computed once, kept.

Why: a year of the dashboard scans a million cases (and their invoices, emails, SMS and
card-updater calls) for figures that, for a month whose dunning is long over, rarely
change. A month's rows here are the live queries' own output for that month
(``reports.rollup`` builds them with the SQL of the metrics), never figures kept up to
date by hand: the cohort grouped, its seconds to recovery, the renewals paid first time
in the month, the cohort's cases whose invoice is no renewal, its email funnel, its SMS
and its card-updater calls.

Why they cannot drift: triggers on every table those reads read delete a month's row
(and so, by cascade, all its rows) in the same transaction as any change that a read of
the month would see (``TRIGGER_FUNCTION``), so no snapshot sees a rollup row next to a
ledger row it does not count. A change and a build of the same month never overlap: the
trigger holds a shared advisory lock on each month it touches until its transaction
ends, and a build takes that lock exclusively (``ROLLUP_LOCK``) before it reads. Writers
must run at ``READ COMMITTED`` (as every writer here does): the trigger's delete must
see a build committed while it waited.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    DDL,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Integer,
    String,
    event,
)
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


class _OfMonth:
    """The columns every figure of a month has, first as in the migrations: its row, its
    month (deleted with it) and its currency."""

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, sort_order=-3)
    month: Mapped[date] = mapped_column(
        Date,
        ForeignKey("report_cohort_months.month", ondelete=_CASCADE),
        index=True,
        sort_order=-2,
    )
    currency: Mapped[str | None] = mapped_column(String(3), sort_order=-1)


class ReportCohortGroup(_OfMonth, Base):
    """The month's cases grouped by every key of a case the reports group by
    (``metrics.cohort.ROLLED``), with the cohort's counts and amounts."""

    __tablename__ = "report_cohort_groups"

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


class ReportPaidRenewals(_OfMonth, Base):
    """The renewals paid in the month that never had a case, per invoice currency
    (``metrics.recovery.PAID_FIRST_TIME``): the month is the payment's, not a cohort's."""

    __tablename__ = "report_paid_renewals"

    n: Mapped[int] = mapped_column(BigInteger)


class ReportNotRenewals(_OfMonth, Base):
    """The month's cases whose invoice is no renewal, per currency
    (``metrics.recovery.NOT_RENEWAL``)."""

    __tablename__ = "report_not_renewals"

    n: Mapped[int] = mapped_column(BigInteger)


class ReportFunnel(_OfMonth, Base):
    """The dunning emails sent to the month's cases, counted per currency, step,
    template and outcome (``metrics.breakdowns.FUNNEL``)."""

    __tablename__ = "report_funnel"

    step: Mapped[int | None] = mapped_column(Integer)
    template: Mapped[str] = mapped_column(String(64))
    recovered: Mapped[bool] = mapped_column(Boolean)
    opened: Mapped[bool] = mapped_column(Boolean)
    updated: Mapped[bool] = mapped_column(Boolean)
    n: Mapped[int] = mapped_column(BigInteger)


class ReportSms(_OfMonth, Base):
    """The SMS sent about the month's cases and the recoveries that followed one, per
    currency (``metrics.channels.SMS_SENT``)."""

    __tablename__ = "report_sms"

    sent: Mapped[int] = mapped_column(BigInteger)
    cases: Mapped[int] = mapped_column(BigInteger)
    amount: Mapped[int] = mapped_column(BigInteger)


class ReportUpdaterCalls(_OfMonth, Base):
    """The card updater's calls about the month's cases and their hits, per currency
    (``metrics.channels.UPDATER_CALLS``)."""

    __tablename__ = "report_updater_calls"

    calls: Mapped[int] = mapped_column(BigInteger)
    hits: Mapped[int] = mapped_column(BigInteger)


# The triggers, a row at a time, and only for rows that a rolled-up month's reads could
# see. A month is rolled up only once it ended a day before the database's clock
# (``reports.rollup``), so a row dated after ``CUTOFF`` (the start of the month holding
# ``now() - 12 hours``) is of a month no build can hold until its transaction has lasted
# 12 hours: a renewal day's fresh cases and invoices never pay for the trigger (their
# ``WHEN`` reads their own dates). A row with no date of its own (an email, an SMS, a
# card-updater call, a customer event) is dated by its case's ``opened_at``: one lookup
# by primary key (by the unique ``invoice_id`` for an invoice, through the email for a
# customer event), and only for rows the reads count (an email or SMS sent, an event
# reached through one). A case is opened on its invoice's first failed charge, so before
# the invoice is paid: a case too fresh for its trigger has no invoice paid in a month
# that can be rolled up (``paid_first_time`` counts invoices without a case).
#
# The function locks the months it finds shared and deletes their rollup rows. An
# update that changes nothing the reports read (a scheduling field, a delivery attempt)
# leaves the months alone.
#
# Not exact in one case: an email's (SMS's, call's) case moved into another month
# (``opened_at`` moves earlier when an earlier failure arrives late) by a transaction
# that commits between the email's lookup and its commit, with a build of that month
# in between. Locking the case row in the lookup would close it, but every email sent
# would then wait on the planner's lock of its case (and could deadlock with it).
CUTOFF = "date_trunc('month', (now() - interval '12 hours') AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
TRIGGER_FUNCTION = f"""
CREATE FUNCTION report_rollup_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    instants timestamptz[];
    months date[];
    m date;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM report_cohort_months;
        RETURN NULL;
    ELSIF TG_TABLE_NAME = 'dunning_cases' THEN
        instants := ARRAY[OLD.opened_at, NEW.opened_at];
        IF TG_OP <> 'UPDATE' OR OLD.invoice_id IS DISTINCT FROM NEW.invoice_id THEN
            instants := instants || ARRAY(SELECT paid_at FROM invoices
                                          WHERE id IN (OLD.invoice_id, NEW.invoice_id));
        END IF;
    ELSIF TG_TABLE_NAME = 'invoices' THEN
        instants := ARRAY[OLD.paid_at, NEW.paid_at];
        IF TG_OP <> 'UPDATE' OR (OLD.billing_reason, OLD.subscription_id)
                IS DISTINCT FROM (NEW.billing_reason, NEW.subscription_id) THEN
            instants := instants || ARRAY(SELECT opened_at FROM dunning_cases
                                          WHERE invoice_id IN (OLD.id, NEW.id));
        END IF;
    ELSIF TG_TABLE_NAME = 'case_events' THEN
        instants := ARRAY(SELECT c.opened_at FROM notifications n
                          JOIN dunning_cases c ON c.id = n.case_id
                          WHERE n.id IN (OLD.notification_id, NEW.notification_id));
    ELSE  -- notifications, card_updater_requests: rows of a case
        instants := ARRAY(SELECT opened_at FROM dunning_cases
                          WHERE id IN (OLD.case_id, NEW.case_id));
    END IF;
    months := ARRAY(SELECT DISTINCT date_trunc('month', t AT TIME ZONE 'UTC')::date
                    FROM unnest(instants) t WHERE t < {CUTOFF} ORDER BY 1);
    FOREACH m IN ARRAY months LOOP
        PERFORM pg_advisory_xact_lock_shared(
            {ROLLUP_LOCK}, (extract(year FROM m) * 12 + extract(month FROM m) - 1)::int);
    END LOOP;
    IF cardinality(months) > 0 THEN
        DELETE FROM report_cohort_months WHERE month = ANY(months);
    END IF;
    RETURN NULL;
END $$"""


def _changed(columns: str) -> str:
    """``columns`` (``a, b``) differ between ``OLD`` and ``NEW``."""
    return (
        f"(OLD.{columns.replace(', ', ', OLD.')}) IS DISTINCT FROM"
        f" (NEW.{columns.replace(', ', ', NEW.')})"
    )


def _dated(column: str, row: str) -> str:
    return f"{row}.{column} < {CUTOFF}"


def _watch(table: str, insert: str, update: str, delete: str) -> list[str]:
    """The triggers of ``table``: each ``WHEN`` (of ``NEW``, ``OLD`` and ``NEW``, ``OLD``)."""
    row = " FOR EACH ROW WHEN ({}) EXECUTE FUNCTION report_rollup_changed()"
    name = f"report_rollup_{table}"
    return [
        f"CREATE TRIGGER {name}_inserted AFTER INSERT ON {table}" + row.format(insert),
        f"CREATE TRIGGER {name}_updated AFTER UPDATE ON {table}" + row.format(update),
        f"CREATE TRIGGER {name}_deleted AFTER DELETE ON {table}" + row.format(delete),
        f"CREATE TRIGGER {name}_truncated AFTER TRUNCATE ON {table}"
        " FOR EACH STATEMENT EXECUTE FUNCTION report_rollup_changed()",
    ]


def _of_a_case(table: str, counted: str, columns: str) -> list[str]:
    """The triggers of a table whose rows belong to a case (``case_id``): for rows that
    are ``counted`` (``{row}``: ``NEW``, ``OLD``), and updates of ``columns``."""
    new, old = counted.format(row="NEW"), counted.format(row="OLD")
    return _watch(table, new, f"({old} OR {new}) AND {_changed(columns)}", old)


CASE_COLUMNS = (
    "opened_at, closed_at, state, amount, currency, recovered_amount, recovered_by,"
    " policy_id, decline_class, first_decline_code, first_card_brand, invoice_id,"
    " subscription_id"
)
"""What the rolled reads read of a case."""
INVOICE_COLUMNS = (
    "paid_at, status, subscription_id, billing_reason, amount_paid, amount_due, currency"
)
"""What the rolled reads read of an invoice (``paid_first_time``, ``not_renewal_cases``)."""
_NOT_CYCLE = "({row}.billing_reason <> 'subscription_cycle' OR {row}.billing_reason IS NULL)"
_CASE, _PAID = "opened_at", "paid_at"
_CREATED_NEW = _dated("processor_created", "NEW")
# Not known to be created after CUTOFF (a row left without its date counts as old).
_CREATED = (
    f"NOT coalesce(coalesce(NEW.processor_created, OLD.processor_created) >= {CUTOFF}, false)"
)
TRIGGERS = [
    *_watch(
        "dunning_cases",
        _dated(_CASE, "NEW"),
        f"({_dated(_CASE, 'OLD')} OR {_dated(_CASE, 'NEW')}) AND {_changed(CASE_COLUMNS)}",
        _dated(_CASE, "OLD"),
    ),
    # An invoice counts for its payment's month, and, when it may be no renewal, for its
    # case's (``not_renewal_cases``; whether it is a renewal changes only with these).
    # Its case is opened by a failed charge of it, after the processor created it, so an
    # invoice created after ``CUTOFF`` has no case in a month that can be rolled up; and
    # from its invoice's row, which is never deleted, so a new row has no case yet unless
    # it comes dated from the past (an import). The bare row made before an event fills
    # it in (no date, no reason) and its filling in skip the trigger.
    *_watch(
        "invoices",
        f"{_dated(_PAID, 'NEW')} OR ({_NOT_CYCLE.format(row='NEW')} AND {_CREATED_NEW})",
        f"(({_dated(_PAID, 'OLD')} OR {_dated(_PAID, 'NEW')}) AND {_changed(INVOICE_COLUMNS)})"
        f" OR ({_changed('billing_reason, subscription_id')} AND {_CREATED})",
        f"{_dated(_PAID, 'OLD')} OR {_NOT_CYCLE.format(row='OLD')}",
    ),
    *_of_a_case(
        "notifications",
        "({row}.case_id IS NOT NULL AND {row}.status = 'sent')",
        "case_id, status, channel, template, step",
    ),
    *_of_a_case(
        "card_updater_requests",
        "({row}.case_id IS NOT NULL AND {row}.reason <> 'fetch')",  # a new card's first read
        "case_id, reason, result",
    ),
    *_of_a_case("case_events", "{row}.notification_id IS NOT NULL", "notification_id, kind"),
]
# A database made from the models (tests, ``create_all``) gets the triggers too: after
# every table exists (the function reads several).
for _sql in (TRIGGER_FUNCTION, *TRIGGERS):
    event.listen(Base.metadata, "after_create", DDL(_sql))
