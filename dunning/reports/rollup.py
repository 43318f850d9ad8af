"""Building the rollup of settled months (``reports.models``) from the ledger.

A month is settled ``SETTLE_DAYS`` after it ends: its dunning is over and its cases
rarely change. Its rollup is the live query of the month, stored: ``fine_groups``,
``recovery_seconds`` and the live part of each of ``ROLLED_READS``, the SQL the reads
run over the ledger. The dashboard page builds the settled months of its period that
are missing before it reads (a month costs about what reading it live does), so a month
whose rollup a change deleted is built again at the next view, and reads live until
then.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from dunning.reports.metrics.breakdowns import FUNNEL
from dunning.reports.metrics.channels import SMS_SENT, UPDATER_CALLS
from dunning.reports.metrics.cohort import COUNTS, ROLLED, fine_groups
from dunning.reports.metrics.recovery import (
    NOT_RENEWAL,
    PAID_FIRST_TIME,
    recovery_seconds,
)
from dunning.reports.metrics.rollup import (
    GROUPS,
    MONTHS,
    RECOVERIES,
    Rolled,
    next_month,
    rolled_months,
)
from dunning.reports.metrics.sql import params
from dunning.reports.models import ROLLUP_LOCK
from dunning.reports.schemas import Filters
from dunning.reports.snapshot import report_settings

log = logging.getLogger(__name__)

ROLLED_READS: tuple[Rolled, ...] = (PAID_FIRST_TIME, NOT_RENEWAL, FUNNEL, SMS_SENT, UPDATER_CALLS)
"""The reads, besides the cohort's groups and seconds to recovery, whose settled months
the rollup keeps."""

SETTLE_DAYS = 45
"""Days after its end before a month is rolled up: a dunning sequence is over by then."""

NEVER_AFTER = timedelta(days=1)
"""Whatever ``as_of`` says, a month is rolled up only once it ended this long before the
database's clock: the triggers watch only rows of months that ended 12 hours before
their transaction began (``reports.models.CUTOFF``), and the rest of the day is the
margin for a writer's transaction that began before a build."""


def settled_months(f: Filters, as_of: datetime, clock: datetime) -> list[date]:
    """The months wholly inside ``f``'s period that are settled at ``as_of``, and ended a
    day before the database's ``clock``."""
    horizon = min((as_of - timedelta(days=SETTLE_DAYS)).date(), (clock - NEVER_AFTER).date())
    out: list[date] = []
    month = f.start if f.start.day == 1 else next_month(f.start)
    while next_month(month) <= min(f.end, horizon):
        out.append(month)
        month = next_month(month)
    return out


def build(engine: Engine, f: Filters, as_of: datetime) -> list[date]:
    """Build the rollup of the settled months of ``f``'s period that it lacks; the months
    built. A month being changed (its lock held) is left for the next call; a database
    that refuses the writes (read-only) leaves the reads live."""
    with engine.connect() as conn:
        wanted = settled_months(f, as_of, conn.execute(text("SELECT now()")).scalar_one())
        if not wanted:
            return []
        period = Filters(start=wanted[0], end=next_month(wanted[-1]), currency=None, segment=None)
        held = set(rolled_months(conn, period))
        conn.rollback()
    built: list[date] = []
    for month in wanted:
        if month in held:
            continue
        try:
            with engine.begin() as conn:
                if _build_month(conn, month):
                    built.append(month)
        except DBAPIError:
            log.exception("report rollup: month %s not built", month)
            break
    return built


def _build_month(conn: Connection, month: date) -> bool:
    """Build ``month`` in ``conn``'s transaction (``READ COMMITTED``: each statement sees
    what committed before it, and no change to the month commits while the lock is held)."""
    lock = {"k": ROLLUP_LOCK, "m": month.year * 12 + month.month - 1}
    if not conn.execute(text("SELECT pg_try_advisory_xact_lock(:k, :m)"), lock).scalar_one():
        return False
    report_settings(conn)
    marked = conn.execute(
        text(
            f"INSERT INTO {MONTHS} (month, built_at) VALUES (:month, now())"
            " ON CONFLICT DO NOTHING RETURNING month"
        ),
        {"month": month},
    ).first()
    if marked is None:  # built meanwhile
        return False
    f = Filters(start=month, end=next_month(month), currency=None, segment=None)
    aggregates = ", ".join(COUNTS[1:])  # COHORT_AGGREGATES, by name
    keys = ", ".join(f"c.k{i}" for i in range(len(ROLLED)))
    conn.execute(
        text(
            f"INSERT INTO {GROUPS} (currency, {', '.join(ROLLED)}, {aggregates})"
            f" SELECT c.currency, {keys}, {aggregates} FROM ({fine_groups(f, ROLLED)}) c"
        ),
        params(f),
    )
    conn.execute(
        text(
            f"INSERT INTO {RECOVERIES} (month, currency, seconds)"
            f" SELECT :month, r.currency, array_agg(r.seconds) FROM ({recovery_seconds(f)}) r"
            " GROUP BY r.currency"
        ),
        {**params(f), "month": month},
    )
    for read in ROLLED_READS:
        columns = ", ".join(read.columns)
        conn.execute(
            text(
                f"INSERT INTO {read.table} (month, {columns})"
                f" SELECT :month, {columns} FROM ({read.live(f, None)}) r"
            ),
            {**read.params(conn, f, None), "month": month},
        )
    return True
