"""the rollup keeps the settled months of every year-long read of the dashboard

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03

The 12-month dashboard page took 1.8-2.2 s (``bench/reports.py``), most of it in the reads
the rollup did not keep: the renewals paid first time, the cases that are no renewal,
the email funnel, the SMS and the card-updater calls. Their settled months are kept
now, each a table of the live query's output for the month. The one trigger function
(``report_rollup_changed``) replaces the cases' own: it watches the cases, and the
invoices, emails and SMS, card-updater calls and customer events those reads read, and
deletes the month a change would alter (a row with no date of its own is dated by its
case, looked up by key). Every ``WHEN`` skips rows of months that ended less than 12
hours ago (was: cases opened less than 12 hours ago), so a renewal day's rows never pay
for it.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | tuple[str, ...] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "report_paid_renewals",
    "report_not_renewals",
    "report_funnel",
    "report_sms",
    "report_updater_calls",
)
WATCHED = ("dunning_cases", "invoices", "notifications", "card_updater_requests", "case_events")
# As in ``dunning/reports/models.py`` on the day of this migration.
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
            1380928596, (extract(year FROM m) * 12 + extract(month FROM m) - 1)::int);
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


def upgrade() -> None:
    for name in ("inserted", "updated", "deleted", "truncated"):
        op.execute(f"DROP TRIGGER report_cohort_{name} ON dunning_cases")
    op.execute("DROP FUNCTION report_cohort_changed()")
    # The months built before these tables existed lack their rows: built again.
    op.execute("DELETE FROM report_cohort_months")
    op.create_table(
        "report_paid_renewals",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["month"], ["report_cohort_months.month"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_report_paid_renewals_month", "report_paid_renewals", ["month"])
    op.create_table(
        "report_not_renewals",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["month"], ["report_cohort_months.month"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_report_not_renewals_month", "report_not_renewals", ["month"])
    op.create_table(
        "report_funnel",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("template", sa.String(length=64), nullable=False),
        sa.Column("recovered", sa.Boolean(), nullable=False),
        sa.Column("opened", sa.Boolean(), nullable=False),
        sa.Column("updated", sa.Boolean(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["month"], ["report_cohort_months.month"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_report_funnel_month", "report_funnel", ["month"])
    op.create_table(
        "report_sms",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("sent", sa.BigInteger(), nullable=False),
        sa.Column("cases", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["month"], ["report_cohort_months.month"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_report_sms_month", "report_sms", ["month"])
    op.create_table(
        "report_updater_calls",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["month"], ["report_cohort_months.month"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_report_updater_calls_month", "report_updater_calls", ["month"])
    op.execute(TRIGGER_FUNCTION)
    for trigger in TRIGGERS:
        op.execute(trigger)


def downgrade() -> None:
    for table in WATCHED:
        for name in ("inserted", "updated", "deleted", "truncated"):
            op.execute(f"DROP TRIGGER report_rollup_{table}_{name} ON {table}")
    op.execute("DROP FUNCTION report_rollup_changed()")
    for table in reversed(TABLES):
        op.drop_index(f"ix_{table}_month", table_name=table)
        op.drop_table(table)
    previous = _revision_0019()
    op.execute(previous.TRIGGER_FUNCTION)
    for trigger in previous.TRIGGERS:
        op.execute(trigger)


def _revision_0019() -> ModuleType:
    """0019's module, for its cases trigger: restored as it was, not copied here."""
    path = Path(__file__).with_name("0019_report_cohort_rollup.py")
    spec = importlib.util.spec_from_file_location("revision_0019", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
