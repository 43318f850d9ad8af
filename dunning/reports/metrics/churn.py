"""Involuntary churn: subscriptions the dunning end action canceled, and their MRR.

The rate is over every subscription live in the period: those active at its start and
those that started during it. Over the first only, a new install (whose subscriptions
all started in the period) would have no rate at all, and a subscription that started
and churned in the period would be counted above but not below the line.

"Live" and "active at the start" are exact where the ledger knows the subscription's
``start_date`` (Stripe's ``start_date``, else its ``created``): it started before the
period's end (before its start, for "at the start") and was not canceled before the
start. Only rows without a start date (not yet refreshed from the processor) fall back
to the old approximation: an invoice created before the period's end (before its start).
"""

from __future__ import annotations

from sqlalchemy import Connection

from dunning.reports.metrics.sql import NO_CURRENCY, params, rows
from dunning.reports.schemas import ChurnRow, Filters
from dunning.reports.stats import ratio

MRR = """(coalesce(s.amount, 0) * CASE s.interval
        WHEN 'year' THEN 1 / 12.0 WHEN 'week' THEN 52 / 12.0 WHEN 'day' THEN 365 / 12.0
        ELSE 1 END / greatest(coalesce(s.interval_count, 1), 1))"""
"""A subscription ``s``'s amount normalised to a month."""

_FIRST_INVOICE = """(SELECT min(i.processor_created) FROM invoices i
                     WHERE i.subscription_id = s.id)"""
"""The fallback start of a subscription without a start date: its first invoice's creation
("an invoice before the date" is "the first invoice before it"). Only rows without a
start date pay for this probe: ``coalesce`` stops at the first value."""


def churn(conn: Connection, f: Filters) -> list[ChurnRow]:
    """Involuntary churn in the period and the MRR it cost, per currency."""
    join = " JOIN customers cu ON cu.id = s.customer_id" if f.segment else ""
    extra = (" AND s.currency = :currency" if f.currency else "") + (
        " AND cu.segment = :segment" if f.segment else ""
    )
    # OFFSET 0: ``live`` is not flattened into the filters that read ``since``, so the
    # fallback probe runs once per subscription, not once per filter.
    sql = f"""
        WITH churned AS (
            SELECT coalesce(s.currency, '{NO_CURRENCY}') AS currency,
                   count(*) AS churned, coalesce(sum({MRR}), 0) AS churned_mrr
            FROM subscriptions s{join}
            WHERE s.id IN (SELECT c.subscription_id FROM dunning_cases c
                           WHERE c.end_action = 'cancel_subscription' AND c.state = 'canceled'
                             AND c.closed_at >= :start AND c.closed_at < :end){extra}
            GROUP BY 1
        ), live AS (
            SELECT coalesce(s.currency, '{NO_CURRENCY}') AS currency, {MRR} AS mrr,
                   coalesce(s.start_date, {_FIRST_INVOICE}) AS since
            FROM subscriptions s{join}
            WHERE ((s.canceled_at IS NULL AND s.status <> 'canceled') OR s.canceled_at >= :start)
              AND s.status NOT IN ('incomplete', 'incomplete_expired'){extra}
            OFFSET 0
        ), active AS (
            SELECT currency,
                   count(*) FILTER (WHERE since < :start) AS active_at_start,
                   count(*) FILTER (WHERE since >= :start) AS started,
                   coalesce(sum(mrr) FILTER (WHERE since < :start), 0) AS mrr_at_start,
                   coalesce(sum(mrr), 0) AS mrr_live
            FROM live WHERE since < :end
            GROUP BY 1
        )
        SELECT coalesce(a.currency, ch.currency) AS currency,
               coalesce(a.active_at_start, 0) AS active_at_start,
               coalesce(a.started, 0) AS started_in_period,
               coalesce(ch.churned, 0) AS churned,
               round(coalesce(a.mrr_at_start, 0))::bigint AS mrr_at_start,
               round(coalesce(a.mrr_live, 0))::bigint AS mrr_live,
               round(coalesce(ch.churned_mrr, 0))::bigint AS churned_mrr
        FROM active a FULL JOIN churned ch ON ch.currency = a.currency
        ORDER BY 1"""
    out: list[ChurnRow] = []
    for r in rows(conn, sql, params(f)):
        live = r["active_at_start"] + r["started_in_period"]
        out.append(
            ChurnRow(
                **r,
                churn_rate=ratio(r["churned"], live),
                mrr_churn_rate=ratio(r["churned_mrr"], r["mrr_live"]),
            )
        )
    return out
