"""The cohort's recovery: counts and amounts, failure rate, time to recovery (channels:
``channels``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Connection

from dunning.reports.metrics.cohort import Groups, cohort_groups, counts
from dunning.reports.metrics.sql import (
    CURRENCY,
    NO_CURRENCY,
    NOT_CYCLE,
    PAID_RENEWAL,
    RECOVERED,
    RENEWAL,
    SECONDS_TO_RECOVERY,
    cohort,
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
    conn: Connection, f: Filters, groups: Groups | None = None
) -> list[dict[str, Any]]:
    """Counts, amounts and time to recovery of the cohort, per currency. ``groups``:
    ``cohort_groups`` of ``f`` with ``TOTALS``, when the caller has them (the dashboard)."""
    found = (groups or cohort_groups(conn, f, [TOTALS])).rows(TOTALS, f.currency)
    found.sort(key=lambda r: r["currency"])
    for row in found:
        del row["value"]
    percentiles = recovery_percentiles(conn, f, [r["currency"] for r in found])
    for row in found:
        row["median_hours"], row["p90_hours"] = percentiles.get(row["currency"], (None, None))
    return found


def recovery_percentiles(conn: Connection, f: Filters, currencies: Sequence[str]) -> Percentiles:
    """Median and p90 (continuous) hours to recovery of the cohort, for each of
    ``currencies`` (those of the cohort; one with no recovery gets ``(None, None)``).

    A query of its own over the recovered cases only: ordered-set aggregates cannot run
    in parallel or hash their groups, so the counts above must not wait for this sort.
    One aggregate per currency (``FILTER``) instead of ``GROUP BY``: no sort of every
    row by currency before each group's own sort, and seconds as ``float8`` sort faster
    than hours as ``numeric`` (a percentile of seconds / 3600 is one of hours).
    """
    if not currencies:
        return {}
    names = [f"p{i}" for i in range(len(currencies))]
    aggregates = ", ".join(
        f"percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY r.seconds)"
        f" FILTER (WHERE r.currency = :c{i}) AS {name}"
        for i, name in enumerate(names)
    )
    sql = f"""
        SELECT {aggregates}
        FROM (SELECT {CURRENCY} AS currency, {SECONDS_TO_RECOVERY}::float8 AS seconds
              FROM {cohort(f)} AND {RECOVERED} AND c.closed_at IS NOT NULL) r"""
    bind = {**params(f), **{f"c{i}": cur for i, cur in enumerate(currencies)}}
    [found] = rows(conn, sql, bind)
    out: Percentiles = {}
    for cur, name in zip(currencies, names, strict=True):
        p = found[name]
        out[cur] = (None, None) if p is None else (p[0] / 3600, p[1] / 3600)
    return out


def renewal_failures(
    conn: Connection, f: Filters, opened: Mapping[str, int]
) -> dict[str, tuple[int, int]]:
    """Per currency: (renewals first charged in the period, renewals whose first charge failed).

    ``opened``: the cohort's cases per currency (``cohort_totals``). The failed renewals
    are those cases less the few whose invoice is no renewal (a case is opened from its
    invoice's ledger row, so every case has one), found through the partial index of
    invoices not billed for a cycle: probing the invoice of each case of a year would
    cost a million index probes.
    """
    bind = params(f)
    renewal = RENEWAL.format(case_subscription="c.subscription_id")
    not_renewal_sql = f"""
        SELECT {CURRENCY} AS currency, count(*) AS n
        FROM invoices i JOIN (SELECT c.* FROM {cohort(f)}) c ON c.invoice_id = i.id
        WHERE {NOT_CYCLE} AND NOT coalesce({renewal}, false)
        GROUP BY 1"""
    join = " JOIN customers cu ON cu.id = i.customer_id" if f.segment else ""
    where = [
        PAID_RENEWAL,
        "i.paid_at >= :start",
        "i.paid_at < :end",
        "NOT EXISTS (SELECT 1 FROM dunning_cases c WHERE c.invoice_id = i.id)",
    ]
    if f.currency:
        where.append("i.currency = :currency")
    if f.segment:
        where.append("cu.segment = :segment")
    paid_sql = f"""
        SELECT coalesce(i.currency, '{NO_CURRENCY}') AS currency, count(*) AS n
        FROM invoices i{join} WHERE {" AND ".join(where)}
        GROUP BY 1"""
    not_renewal = {r["currency"]: int(r["n"]) for r in rows(conn, not_renewal_sql, bind)}
    failed = {cur: n - not_renewal.get(cur, 0) for cur, n in opened.items()}
    paid = {r["currency"]: int(r["n"]) for r in rows(conn, paid_sql, bind)}
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
    percentiles = recovery_percentiles(conn, f, [r["currency"] for r in found])
    return [
        TimeToRecoveryRow(
            currency=r["currency"],
            recovered=r["recovered"],
            median_hours=percentiles[r["currency"]][0],
            p90_hours=percentiles[r["currency"]][1],
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
