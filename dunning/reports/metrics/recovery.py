"""The cohort's recovery: counts and amounts, failure rate, time to recovery (channels:
``channels``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import Connection

from dunning.reports.metrics.cohort import Groups, cohort_groups, counts
from dunning.reports.metrics.rollup import RECOVERIES, Rolled, split
from dunning.reports.metrics.sql import (
    CURRENCY,
    NOT_CYCLE,
    PAID_RENEWAL,
    RECOVERED,
    RENEWAL,
    SECONDS_TO_RECOVERY,
    Ranges,
    cohort,
    in_period,
    params,
    rows,
    with_rates,
)
from dunning.reports.schemas import (
    Filters,
    MonthRow,
    RecoveryDayRow,
    TimeToRecoveryRow,
)

Percentiles = dict[str, tuple[float | None, float | None]]


TOTALS = "total"
"""The ``cohort_groups`` grouping ``cohort_totals`` reads."""


def cohort_totals(
    conn: Connection,
    f: Filters,
    groups: Groups | None = None,
    percentiles: Percentiles | None = None,
) -> list[dict[str, Any]]:
    """Counts, amounts and time to recovery of the cohort, per currency. ``groups``
    (``cohort_groups`` of ``f`` with ``TOTALS``) and ``percentiles``
    (``recovery_percentiles`` of ``f``): when the caller has them (the dashboard)."""
    if percentiles is None:
        percentiles = recovery_percentiles(conn, f)
    found = (groups or cohort_groups(conn, f, [TOTALS])).rows(TOTALS, f.currency)
    found.sort(key=lambda r: r["currency"])
    for row in found:
        del row["value"]
        row["median_hours"], row["p90_hours"] = percentiles.get(row["currency"], (None, None))
    return found


def recovery_seconds(f: Filters, ranges: Ranges | None = None) -> str:
    """The currency and seconds to recovery of each recovered case of the cohort (in
    ``ranges`` of it, when given). A settled month's rollup keeps these of the month."""
    return f"""SELECT {CURRENCY} AS currency, {SECONDS_TO_RECOVERY}::float8 AS seconds
              FROM {cohort(f, ranges)} AND {RECOVERED} AND c.closed_at IS NOT NULL"""


def recovery_percentiles(conn: Connection, f: Filters) -> Percentiles:
    """Median and p90 (continuous) hours to recovery of the cohort, per currency with a
    recovery.

    A query of its own over the recovered cases only: ordered-set aggregates cannot run
    in parallel or hash their groups, so the counts above must not wait for this sort.
    Seconds as ``float8`` sort faster than hours as ``numeric`` (a percentile of
    seconds / 3600 is one of hours). The seconds of the settled months that the rollup
    holds are read from it (all currencies, no segment: it keeps them so).
    """
    parts = split(conn, f, f.segment is None and f.currency is None)
    rolled = (
        f"SELECT r.currency, s.seconds FROM {RECOVERIES} r, unnest(r.seconds) AS s(seconds)"
        " WHERE r.month = ANY(:rolled)"
    )
    sql = f"""
        SELECT r.currency, percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY r.seconds) AS p
        FROM ({parts.union(lambda r: recovery_seconds(f, r), rolled)}) r
        GROUP BY 1"""
    found = rows(conn, sql, parts.params(f))
    return {r["currency"]: (r["p"][0] / 3600, r["p"][1] / 3600) for r in found}


Counts = dict[str, int]


def _not_renewal(f: Filters, ranges: Ranges | None) -> str:
    renewal = RENEWAL.format(case_subscription="c.subscription_id")
    return f"""
        SELECT c.currency, count(*) AS n
        FROM invoices i JOIN (SELECT c.* FROM {cohort(f, ranges)}) c ON c.invoice_id = i.id
        WHERE {NOT_CYCLE} AND NOT coalesce({renewal}, false)
        GROUP BY 1"""


NOT_RENEWAL = Rolled("report_not_renewals", ("currency", "n"), _not_renewal)
"""The cohort's cases whose invoice is no renewal, per stored currency."""


def not_renewal_cases(conn: Connection, f: Filters) -> Counts:
    """Per currency: the cohort's cases whose invoice is no renewal (few), found through
    the partial index of invoices not billed for a cycle: probing the invoice of each
    case of a year would cost a million index probes. Settled months from the rollup."""
    return {cur: n for cur, (n,) in NOT_RENEWAL.summed(conn, f).items()}


def _paid_first_time(f: Filters, ranges: Ranges | None) -> str:
    join = " JOIN customers cu ON cu.id = i.customer_id" if f.segment else ""
    where = [
        PAID_RENEWAL,
        in_period("i.paid_at", ranges),
        "NOT EXISTS (SELECT 1 FROM dunning_cases c WHERE c.invoice_id = i.id)",
    ]
    if f.currency:
        where.append("i.currency = :currency")
    if f.segment:
        where.append("cu.segment = :segment")
    return f"""
        SELECT i.currency, count(*) AS n
        FROM invoices i{join} WHERE {" AND ".join(where)}
        GROUP BY 1"""


PAID_FIRST_TIME = Rolled("report_paid_renewals", ("currency", "n"), _paid_first_time)
"""Renewals paid in the period (a month: paid in it) that never had a case, per stored
invoice currency."""


def paid_first_time(conn: Connection, f: Filters) -> Counts:
    """Per currency: renewals paid in the period that never had a case. Settled months
    from the rollup."""
    return {cur: n for cur, (n,) in PAID_FIRST_TIME.summed(conn, f).items()}


def renewal_failures(
    opened: Mapping[str, int], not_renewal: Counts, paid: Counts
) -> dict[str, tuple[int, int]]:
    """Per currency: (renewals first charged in the period, renewals whose first charge
    failed): the cohort's cases (``opened``, from ``cohort_totals``) less those whose
    invoice is no renewal (``not_renewal_cases``; a case is opened from its invoice's
    ledger row, so every case has one), and the renewals paid first time
    (``paid_first_time``)."""
    failed = {cur: n - not_renewal.get(cur, 0) for cur, n in opened.items()}
    return {
        cur: (failed.get(cur, 0) + paid.get(cur, 0), failed.get(cur, 0)) for cur in failed | paid
    }


def time_to_recovery(conn: Connection, f: Filters) -> list[TimeToRecoveryRow]:
    """Median and p90 hours from first failure to payment, per currency."""
    sql = f"""
        SELECT {CURRENCY} AS currency, count(*) AS recovered
        FROM {cohort(f)} AND {RECOVERED}
        GROUP BY 1 ORDER BY 1"""
    found = list(rows(conn, sql, params(f)))
    percentiles = recovery_percentiles(conn, f)
    none = (None, None)
    return [
        TimeToRecoveryRow(
            currency=r["currency"],
            recovered=r["recovered"],
            median_hours=percentiles.get(r["currency"], none)[0],
            p90_hours=percentiles.get(r["currency"], none)[1],
        )
        for r in found
    ]


def recovery_days(
    conn: Connection, f: Filters, groups: Groups | None = None
) -> list[RecoveryDayRow]:
    """Recovered cases by whole days since the first failure (0 … 29, then 30+).
    ``groups``: ``cohort_groups`` with ``day`` when the caller has them (the dashboard)."""
    found = (groups or cohort_groups(conn, f, ["day"])).rows("day", f.currency)
    return sorted(
        (
            RecoveryDayRow(
                currency=r["currency"],
                day=r["value"],
                cases=r["cases_recovered"],
                amount=r["recovered_amount"],
            )
            for r in found
            if r["value"] is not None
        ),
        key=lambda d: (d.currency, d.day),
    )


def monthly(conn: Connection, f: Filters, *groups: Groups) -> list[MonthRow]:
    """The cohort of each calendar month (UTC) of the period, per currency.

    ``groups``: ``cohort_groups`` with ``month`` of periods that together are ``f``'s
    (the dashboard's trend: the months before its period, and its period), when the
    caller has them; their months are added up."""
    months: dict[tuple[date, str], dict[str, Any]] = {}
    for g in groups or (cohort_groups(conn, f, ["month"]),):
        for r in g.rows("month", f.currency):
            key, row = (r["value"], r["currency"]), counts(r)
            if key in months:
                for name, v in row.items():
                    if name != "currency":
                        months[key][name] += v
            else:
                months[key] = row
    return [MonthRow(month=month, **with_rates(r)) for (month, _), r in sorted(months.items())]
