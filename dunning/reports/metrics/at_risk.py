"""Renewals at risk: the default card expires before the subscription renews."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from dunning.reports.metrics.sql import NO_CURRENCY, params, rows
from dunning.reports.schemas import AtRiskRow, AtRiskSummaryRow, Filters

AT_RISK_DAYS = 30


def _at_risk_sql(f: Filters) -> str:
    extra = (" AND s.currency = :currency" if f.currency else "") + (
        " AND cu.segment = :segment" if f.segment else ""
    )
    return f"""
        FROM subscriptions s
        LEFT JOIN customers cu ON cu.id = s.customer_id
        JOIN payment_methods pm
          ON pm.id = coalesce(s.default_payment_method_id, cu.default_payment_method_id)
        WHERE s.status IN ('active', 'trialing', 'past_due') AND NOT s.cancel_at_period_end
          AND s.current_period_end >= :as_of AND s.current_period_end < :horizon
          AND NOT pm.detached AND pm.exp_month BETWEEN 1 AND 12
          AND make_date(pm.exp_year, pm.exp_month, 1) + interval '1 month'
              <= s.current_period_end{extra}"""


def _at_risk_params(f: Filters, as_of: datetime, days: int) -> dict[str, Any]:
    return {**params(f), "as_of": as_of, "horizon": as_of + timedelta(days=days)}


def at_risk(
    conn: Connection, f: Filters, as_of: datetime, days: int = AT_RISK_DAYS
) -> list[AtRiskRow]:
    """Renewals in the next ``days`` whose default card expires before they renew."""
    sql = f"""
        SELECT s.id AS subscription_id, s.customer_id, cu.segment,
            coalesce(s.plan_name, s.plan_id) AS plan, s.current_period_end AS renews_at,
            pm.brand AS card_brand, pm.last4 AS card_last4,
            to_char(make_date(pm.exp_year, pm.exp_month, 1), 'YYYY-MM') AS card_expires,
            coalesce(s.upcoming_amount, s.amount, 0) AS amount,
            coalesce(s.currency, '{NO_CURRENCY}') AS currency
        {_at_risk_sql(f)}
        ORDER BY s.current_period_end, s.id"""
    return [AtRiskRow(**r) for r in rows(conn, sql, _at_risk_params(f, as_of, days))]


def at_risk_summary(
    conn: Connection, f: Filters, as_of: datetime, days: int = AT_RISK_DAYS
) -> list[AtRiskSummaryRow]:
    """Renewals at risk per currency: how many and their amount."""
    sql = f"""
        SELECT coalesce(s.currency, '{NO_CURRENCY}') AS currency, count(*) AS subscriptions,
            coalesce(sum(coalesce(s.upcoming_amount, s.amount, 0)), 0)::bigint AS amount
        {_at_risk_sql(f)}
        GROUP BY 1 ORDER BY 1"""
    return [AtRiskSummaryRow(**r) for r in rows(conn, sql, _at_risk_params(f, as_of, days))]
