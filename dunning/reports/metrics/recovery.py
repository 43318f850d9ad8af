"""The cohort's recovery: counts and amounts, failure rate, channels, time to recovery."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from dunning.reports.metrics.sql import (
    COHORT_AGGREGATES,
    CURRENCY,
    HOURS_TO_RECOVERY,
    NO_CURRENCY,
    PAID,
    RECOVERED,
    RENEWAL,
    cohort,
    params,
    rows,
    with_rates,
)
from dunning.reports.schemas import (
    ChannelRow,
    Filters,
    MonthRow,
    RecoveryDayRow,
    TimeToRecoveryRow,
)
from dunning.reports.stats import ratio

UPDATER = "card_updater"
CHANNELS = ("retry", "processor", "customer", UPDATER)
MAX_DAY = 30  # the last bucket of the time-to-recovery distribution: 30 days or more

Percentiles = dict[str, tuple[float | None, float | None]]


def cohort_totals(conn: Connection, f: Filters) -> list[dict[str, Any]]:
    """Counts, amounts and time to recovery of the cohort, per currency."""
    sql = f"""
        SELECT {CURRENCY} AS currency, {COHORT_AGGREGATES}
        FROM {cohort(f)}
        GROUP BY 1 ORDER BY 1"""
    found = list(rows(conn, sql, params(f)))
    percentiles = recovery_percentiles(conn, f)
    for row in found:
        row["median_hours"], row["p90_hours"] = percentiles.get(row["currency"], (None, None))
    return found


def recovery_percentiles(conn: Connection, f: Filters) -> Percentiles:
    """Median and p90 (continuous) hours to recovery of the cohort, per currency.

    A query of its own over the recovered cases only: ordered-set aggregates cannot run
    in parallel or hash their groups, so the counts above must not wait for this sort.
    """
    sql = f"""
        SELECT {CURRENCY} COLLATE "C" AS currency,
            percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY {HOURS_TO_RECOVERY}) AS p
        FROM {cohort(f)} AND {RECOVERED} AND c.closed_at IS NOT NULL
        GROUP BY 1"""
    return {r["currency"]: (r["p"][0], r["p"][1]) for r in rows(conn, sql, params(f))}


def renewal_failures(conn: Connection, f: Filters) -> dict[str, tuple[int, int]]:
    """Per currency: (renewals first charged in the period, renewals whose first charge failed)."""
    bind = params(f)
    failed_sql = f"""
        SELECT {CURRENCY} AS currency, count(*) AS n
        FROM {cohort(f)}
          AND EXISTS (SELECT 1 FROM invoices i WHERE i.id = c.invoice_id
                      AND {RENEWAL.format(case_subscription="c.subscription_id")})
        GROUP BY 1"""
    join = " JOIN customers cu ON cu.id = i.customer_id" if f.segment else ""
    where = [
        "i.subscription_id IS NOT NULL",
        "i.paid_at >= :start",
        "i.paid_at < :end",
        "i.status = 'paid'",
        "coalesce(i.amount_paid, i.amount_due, 0) > 0",
        RENEWAL.format(case_subscription="NULL"),
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
    failed = {r["currency"]: int(r["n"]) for r in rows(conn, failed_sql, bind)}
    paid = {r["currency"]: int(r["n"]) for r in rows(conn, paid_sql, bind)}
    return {
        cur: (failed.get(cur, 0) + paid.get(cur, 0), failed.get(cur, 0)) for cur in failed | paid
    }


def recovered_by_channel(conn: Connection, f: Filters) -> list[ChannelRow]:
    """Recovered revenue of the cohort by channel, per currency (every channel listed)."""
    sql = f"""
        SELECT {CURRENCY} AS currency, coalesce(c.recovered_by, 'processor') AS channel,
            count(*) AS cases, coalesce(sum({PAID}), 0)::bigint AS amount
        FROM {cohort(f)} AND {RECOVERED}
        GROUP BY 1, 2"""
    found = {(r["currency"], r["channel"]): r for r in rows(conn, sql, params(f))}
    updater = updater_calls(conn, f)
    out: list[ChannelRow] = []
    for currency in sorted({cur for cur, _ in found} | set(updater)):
        total = sum(r["amount"] for (cur, _), r in found.items() if cur == currency)
        channels = [*CHANNELS, *sorted({ch for cur, ch in found if cur == currency} - {*CHANNELS})]
        for channel in channels:
            r = found.get((currency, channel), {"cases": 0, "amount": 0})
            out.append(
                ChannelRow(
                    currency=currency,
                    channel=channel,
                    cases=r["cases"],
                    amount=r["amount"],
                    share=ratio(r["amount"], total),
                    calls=updater.get(currency, (0, 0))[0] if channel == UPDATER else None,
                    hits=updater.get(currency, (0, 0))[1] if channel == UPDATER else None,
                )
            )
    return out


def updater_calls(conn: Connection, f: Filters) -> dict[str, tuple[int, int]]:
    """Per currency: the card updater's calls about the cohort's cases, and its hits (the
    card changed). A first read of an unknown card (``fetch``) is no updater call."""
    sql = f"""
        SELECT {CURRENCY} AS currency, count(*) AS calls,
            count(*) FILTER (WHERE r.result IN ('new_expiry', 'new_card')) AS hits
        FROM card_updater_requests r, {cohort(f)} AND r.case_id = c.id AND r.reason <> 'fetch'
        GROUP BY 1"""
    return {r["currency"]: (int(r["calls"]), int(r["hits"])) for r in rows(conn, sql, params(f))}


def time_to_recovery(conn: Connection, f: Filters) -> list[TimeToRecoveryRow]:
    """Median and p90 hours from first failure to payment, per currency."""
    sql = f"""
        SELECT {CURRENCY} AS currency, count(*) AS recovered
        FROM {cohort(f)} AND {RECOVERED}
        GROUP BY 1 ORDER BY 1"""
    percentiles = recovery_percentiles(conn, f)
    return [
        TimeToRecoveryRow(
            currency=r["currency"],
            recovered=r["recovered"],
            median_hours=percentiles.get(r["currency"], (None, None))[0],
            p90_hours=percentiles.get(r["currency"], (None, None))[1],
        )
        for r in rows(conn, sql, params(f))
    ]


def recovery_days(conn: Connection, f: Filters) -> list[RecoveryDayRow]:
    """Recovered cases by whole days since the first failure (0 … 29, then 30+)."""
    sql = f"""
        SELECT {CURRENCY} AS currency,
            least(floor({HOURS_TO_RECOVERY} / 24), {MAX_DAY})::int AS day,
            count(*) AS cases, coalesce(sum({PAID}), 0)::bigint AS amount
        FROM {cohort(f)} AND {RECOVERED} AND c.closed_at IS NOT NULL
        GROUP BY 1, 2 ORDER BY 1, 2"""
    return [RecoveryDayRow(**r) for r in rows(conn, sql, params(f))]


def monthly(conn: Connection, f: Filters) -> list[MonthRow]:
    """The cohort of each calendar month (UTC) of the period, per currency."""
    sql = f"""
        SELECT (date_trunc('month', c.opened_at AT TIME ZONE 'UTC'))::date AS month,
            {CURRENCY} AS currency, {COHORT_AGGREGATES}
        FROM {cohort(f)}
        GROUP BY 1, 2 ORDER BY 1, 2"""
    return [MonthRow(**with_rates(r)) for r in rows(conn, sql, params(f))]
