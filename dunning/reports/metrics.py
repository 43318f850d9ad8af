"""Every finance metric, defined once: SQL over the ledger, one function per table.

The API, the CSV export, the dashboard and ``dunning report`` all call these functions,
so a number means the same thing wherever it is read. Definitions (also in the README):

- **Period**: ``[start, end)`` in UTC. Amounts are grouped by currency and never added
  across currencies; a row whose currency is unknown is reported under ``xxx``.
- **Cohort**: the dunning cases *opened* (first failed charge) in the period. One case per
  invoice, so a case that was closed, reopened and then recovered counts once.
  Closed = any state but ``open``.
- **Failure rate**: renewal invoices whose first charge failed ÷ renewal invoices first
  charged in the period. A renewal invoice has ``billing_reason = subscription_cycle``
  (or no billing reason but a subscription). Its first charge failed when a case was opened
  for it in the period; it was first charged successfully when it was paid in the period
  (``paid_at``, amount paid > 0) and has no case. Retries are not charges of a new renewal:
  a policy that retries more does not raise the failure rate.
- **Recovery rate** (count) = recovered ÷ closed cases of the cohort; **by amount** =
  amount paid on recovered cases ÷ amount of the closed cases. Open cases are in neither
  (they are reported as ``cases_open``).
- **Recovered revenue by channel**: ``recovered_by`` of the recovered cases: ``retry`` (our
  retry), ``processor`` (the processor's own retry), ``customer`` (through the link),
  ``card_updater``.
- **Time to recovery**: ``closed_at - opened_at`` of recovered cases of the cohort,
  median and 90th percentile (continuous), and counts by whole days since the failure.
- **Involuntary churn**: subscriptions canceled by the dunning end action (a case with
  ``end_action = cancel_subscription`` that closed as ``canceled``) in the period ÷
  subscriptions active at its start. The ledger has no subscription start date, so
  "active at start" is approximated as: not canceled before the start, not
  ``incomplete``, and having an invoice created before the start.
- **MRR**: a subscription's amount normalised to a month (yearly ÷ 12, weekly * 52/12,
  daily * 365/12, divided by the interval count).
- **Breakdowns** (cohort): decline class = the class of the case's latest engine decision
  that has one; decline code and card brand = those of the case's first failed charge;
  plan and segment = the subscription's plan and the customer's segment now; policy = the
  policy version the case was opened with (the A/B arm).
- **A/B**: per policy version, recovery rate of the cohort with its 95 % Wilson interval;
  ``n`` is the number of closed cases (counts of all currencies together).
- **Email funnel** (cohort, per step and template): dunning emails sent (not the emails
  announcing an outcome) → of those, emails whose link was opened → whose link led to a
  card update → and whose case was recovered. Each stage is a subset of the one before.
- **At risk**: active, trialing or past-due subscriptions renewing within the horizon
  (30 days) whose default card (the subscription's, else the customer's) expires before
  the renewal date; amount = the upcoming invoice amount, else the plan amount.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, text

from dunning.reports.schemas import (
    ArmRow,
    AtRiskRow,
    AtRiskSummaryRow,
    BreakdownRow,
    ChannelRow,
    ChurnRow,
    Filters,
    FunnelRow,
    HeadlineRow,
    MonthRow,
    RecoveryDayRow,
    TimeToRecoveryRow,
)
from dunning.reports.stats import ratio, wilson_interval

NO_CURRENCY = "xxx"
CHANNELS = ("retry", "processor", "customer", "card_updater")
MAX_DAY = 30  # the last bucket of the time-to-recovery distribution: 30 days or more
AT_RISK_DAYS = 30

# One place for each SQL fragment that defines a metric.
_CURRENCY = f"coalesce(c.currency, '{NO_CURRENCY}')"
_CLOSED = "c.state <> 'open'"
_RECOVERED = "c.state = 'recovered'"
_PAID = "coalesce(c.recovered_amount, c.amount, 0)"
_COHORT_AGGREGATES = f"""
    count(*) AS cases_opened,
    count(*) FILTER (WHERE {_CLOSED}) AS cases_closed,
    count(*) FILTER (WHERE {_RECOVERED}) AS cases_recovered,
    coalesce(sum(c.amount), 0)::bigint AS failed_amount,
    coalesce(sum(c.amount) FILTER (WHERE {_CLOSED}), 0)::bigint AS closed_failed_amount,
    coalesce(sum({_PAID}) FILTER (WHERE {_RECOVERED}), 0)::bigint AS recovered_amount
"""
_HOURS_TO_RECOVERY = "greatest(extract(epoch FROM c.closed_at - c.opened_at), 0) / 3600.0"
_RENEWAL = (
    "(i.billing_reason = 'subscription_cycle' OR (i.billing_reason IS NULL"
    " AND coalesce(i.subscription_id, {case_subscription}) IS NOT NULL))"
)
_MRR = """(coalesce(s.amount, 0) * CASE s.interval
        WHEN 'year' THEN 1 / 12.0 WHEN 'week' THEN 52 / 12.0 WHEN 'day' THEN 365 / 12.0
        ELSE 1 END / greatest(coalesce(s.interval_count, 1), 1))"""

DIMENSIONS: Mapping[str, str] = {
    "decline_class": """(SELECT d.decline_class FROM case_decisions d
        WHERE d.case_id = c.id AND d.decline_class IS NOT NULL
        ORDER BY d.decided_at DESC, d.id DESC LIMIT 1)""",
    "decline_code": """(SELECT coalesce(a.decline_code, a.failure_code) FROM charge_attempts a
        WHERE a.invoice_id = c.invoice_id AND a.outcome = 'failed'
        ORDER BY a.attempted_at, a.id LIMIT 1)""",
    "card_brand": """(SELECT a.card_brand FROM charge_attempts a
        WHERE a.invoice_id = c.invoice_id AND a.outcome = 'failed'
        ORDER BY a.attempted_at, a.id LIMIT 1)""",
    "plan": """(SELECT coalesce(s.plan_name, s.plan_id) FROM subscriptions s
        WHERE s.id = c.subscription_id)""",
    "segment": "(SELECT cu.segment FROM customers cu WHERE cu.id = c.customer_id)",
    "policy": """(SELECT p.name || ' v' || p.version FROM retry_policies p
        WHERE p.id = c.policy_id)""",
}
"""What each breakdown groups the cohort by."""

UNKNOWN = "unknown"
# Emails about an outcome (paid, canceled) are not steps of the dunning sequence.
_AFTER_OUTCOME = "('payment_recovered', 'subscription_canceled')"


def _instant(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _params(f: Filters) -> dict[str, Any]:
    return {
        "start": _instant(f.start),
        "end": _instant(f.end),
        "currency": f.currency,
        "segment": f.segment,
    }


def _cohort(f: Filters) -> str:
    """FROM … WHERE of the cohort, aliased ``c``: cases opened in the period."""
    join = " JOIN customers cu ON cu.id = c.customer_id" if f.segment else ""
    where = ["c.opened_at >= :start", "c.opened_at < :end"]
    if f.currency:
        where.append("c.currency = :currency")
    if f.segment:
        where.append("cu.segment = :segment")
    return f"dunning_cases c{join} WHERE {' AND '.join(where)}"


def _rows(conn: Connection, sql: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    for row in conn.execute(text(sql), dict(params)):
        yield dict(row._mapping)


def _with_rates(row: dict[str, Any]) -> dict[str, Any]:
    row["recovery_rate"] = ratio(row["cases_recovered"], row["cases_closed"])
    closed_amount = row.pop("closed_failed_amount")
    row["recovery_rate_amount"] = ratio(row["recovered_amount"], closed_amount)
    return row


# --- the cohort ------------------------------------------------------------------------


def cohort_totals(conn: Connection, f: Filters) -> list[dict[str, Any]]:
    """Counts, amounts and time to recovery of the cohort, per currency."""
    sql = f"""
        SELECT {_CURRENCY} AS currency, {_COHORT_AGGREGATES}
        FROM {_cohort(f)}
        GROUP BY 1 ORDER BY 1"""
    rows = list(_rows(conn, sql, _params(f)))
    percentiles = recovery_percentiles(conn, f)
    for row in rows:
        row["median_hours"], row["p90_hours"] = percentiles.get(row["currency"], (None, None))
    return rows


def recovery_percentiles(
    conn: Connection, f: Filters
) -> dict[str, tuple[float | None, float | None]]:
    """Median and p90 (continuous) hours to recovery of the cohort, per currency.

    A query of its own over the recovered cases only: ordered-set aggregates cannot run
    in parallel or hash their groups, so the counts above must not wait for this sort.
    """
    sql = f"""
        SELECT {_CURRENCY} COLLATE "C" AS currency,
            percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY {_HOURS_TO_RECOVERY}) AS p
        FROM {_cohort(f)} AND {_RECOVERED} AND c.closed_at IS NOT NULL
        GROUP BY 1"""
    return {r["currency"]: (r["p"][0], r["p"][1]) for r in _rows(conn, sql, _params(f))}


def renewal_failures(conn: Connection, f: Filters) -> dict[str, tuple[int, int]]:
    """Per currency: (renewals first charged in the period, renewals whose first charge failed)."""
    params = _params(f)
    failed_sql = f"""
        SELECT {_CURRENCY} AS currency, count(*) AS n
        FROM {_cohort(f)}
          AND EXISTS (SELECT 1 FROM invoices i WHERE i.id = c.invoice_id
                      AND {_RENEWAL.format(case_subscription="c.subscription_id")})
        GROUP BY 1"""
    join = " JOIN customers cu ON cu.id = i.customer_id" if f.segment else ""
    where = [
        "i.subscription_id IS NOT NULL",
        "i.paid_at >= :start",
        "i.paid_at < :end",
        "i.status = 'paid'",
        "coalesce(i.amount_paid, i.amount_due, 0) > 0",
        _RENEWAL.format(case_subscription="NULL"),
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
    failed = {r["currency"]: int(r["n"]) for r in _rows(conn, failed_sql, params)}
    paid = {r["currency"]: int(r["n"]) for r in _rows(conn, paid_sql, params)}
    return {
        cur: (failed.get(cur, 0) + paid.get(cur, 0), failed.get(cur, 0)) for cur in failed | paid
    }


def recovered_by_channel(conn: Connection, f: Filters) -> list[ChannelRow]:
    """Recovered revenue of the cohort by channel, per currency (every channel listed)."""
    sql = f"""
        SELECT {_CURRENCY} AS currency, coalesce(c.recovered_by, 'processor') AS channel,
            count(*) AS cases, coalesce(sum({_PAID}), 0)::bigint AS amount
        FROM {_cohort(f)} AND {_RECOVERED}
        GROUP BY 1, 2"""
    found = {(r["currency"], r["channel"]): r for r in _rows(conn, sql, _params(f))}
    out: list[ChannelRow] = []
    for currency in sorted({cur for cur, _ in found}):
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
                )
            )
    return out


def time_to_recovery(conn: Connection, f: Filters) -> list[TimeToRecoveryRow]:
    """Median and p90 hours from first failure to payment, per currency."""
    sql = f"""
        SELECT {_CURRENCY} AS currency, count(*) AS recovered
        FROM {_cohort(f)} AND {_RECOVERED}
        GROUP BY 1 ORDER BY 1"""
    percentiles = recovery_percentiles(conn, f)
    return [
        TimeToRecoveryRow(
            currency=r["currency"],
            recovered=r["recovered"],
            median_hours=percentiles.get(r["currency"], (None, None))[0],
            p90_hours=percentiles.get(r["currency"], (None, None))[1],
        )
        for r in _rows(conn, sql, _params(f))
    ]


def recovery_days(conn: Connection, f: Filters) -> list[RecoveryDayRow]:
    """Recovered cases by whole days since the first failure (0 … 29, then 30+)."""
    sql = f"""
        SELECT {_CURRENCY} AS currency,
            least(floor({_HOURS_TO_RECOVERY} / 24), {MAX_DAY})::int AS day,
            count(*) AS cases, coalesce(sum({_PAID}), 0)::bigint AS amount
        FROM {_cohort(f)} AND {_RECOVERED} AND c.closed_at IS NOT NULL
        GROUP BY 1, 2 ORDER BY 1, 2"""
    return [RecoveryDayRow(**r) for r in _rows(conn, sql, _params(f))]


def monthly(conn: Connection, f: Filters) -> list[MonthRow]:
    """The cohort of each calendar month (UTC) of the period, per currency."""
    sql = f"""
        SELECT (date_trunc('month', c.opened_at AT TIME ZONE 'UTC'))::date AS month,
            {_CURRENCY} AS currency, {_COHORT_AGGREGATES}
        FROM {_cohort(f)}
        GROUP BY 1, 2 ORDER BY 1, 2"""
    return [MonthRow(**_with_rates(r)) for r in _rows(conn, sql, _params(f))]


def breakdown(conn: Connection, f: Filters, dimension: str) -> list[BreakdownRow]:
    """The cohort grouped by ``dimension`` (one of ``DIMENSIONS``), per currency."""
    expression = DIMENSIONS[dimension]
    sql = f"""
        SELECT coalesce(c.value, '{UNKNOWN}') AS value, {_CURRENCY} AS currency,
            {_COHORT_AGGREGATES}
        FROM (SELECT c.state, c.amount, c.recovered_amount, c.currency,
                     {expression} AS value
              FROM {_cohort(f)}) c
        GROUP BY 1, 2 ORDER BY 2, cases_opened DESC, 1"""
    return [
        BreakdownRow(dimension=dimension, **_with_rates(r)) for r in _rows(conn, sql, _params(f))
    ]


def ab_arms(conn: Connection, f: Filters) -> list[ArmRow]:
    """Recovery rate of each policy version over the cohort, with a 95 % Wilson interval."""
    sql = f"""
        SELECT a.policy_id, p.name || ' v' || p.version AS policy, a.cases_opened, a.n,
            a.recovered
        FROM (SELECT c.policy_id, count(*) AS cases_opened,
                  count(*) FILTER (WHERE {_CLOSED}) AS n,
                  count(*) FILTER (WHERE {_RECOVERED}) AS recovered
              FROM {_cohort(f)}
              GROUP BY 1) a
        LEFT JOIN retry_policies p ON p.id = a.policy_id
        ORDER BY 1 NULLS LAST"""
    arms = list(_rows(conn, sql, _params(f)))
    activation = conn.execute(
        text("SELECT active_policy_id, split_policy_id FROM policy_activation WHERE id = 1")
    ).one_or_none()
    active, split = (activation[0], activation[1]) if activation else (None, None)
    out: list[ArmRow] = []
    for r in arms:
        policy_id = r["policy_id"]
        status = (
            "none"
            if policy_id is None
            else "active"
            if policy_id == active
            else "split"
            if policy_id == split
            else "inactive"
        )
        interval = wilson_interval(r["recovered"], r["n"])
        out.append(
            ArmRow(
                policy_id=policy_id,
                policy=r["policy"] or ("no policy" if policy_id is None else f"#{policy_id}"),
                status=status,
                cases_opened=r["cases_opened"],
                n=r["n"],
                recovered=r["recovered"],
                recovery_rate=ratio(r["recovered"], r["n"]),
                ci_low=None if interval is None else interval[0],
                ci_high=None if interval is None else interval[1],
            )
        )
    return out


def funnel(conn: Connection, f: Filters) -> list[FunnelRow]:
    """Per dunning step: emails sent to the cohort → link opened → card updated → paid.

    ``step`` is the policy step's number; the final notice and "action required" emails
    have none and are told apart by their template.
    """
    sql = f"""
        SELECT n.step, n.template, count(*) AS sent,
            count(*) FILTER (WHERE e.opened OR e.updated) AS link_opened,
            count(*) FILTER (WHERE e.updated) AS card_updated,
            count(*) FILTER (WHERE e.updated AND c.state = 'recovered') AS paid
        FROM (SELECT c.id, c.state FROM {_cohort(f)}) c
        JOIN notifications n ON n.case_id = c.id
        LEFT JOIN LATERAL (
            SELECT coalesce(bool_or(ev.kind = 'link_opened'), false) AS opened,
                   coalesce(bool_or(ev.kind = 'card_updated'), false) AS updated
            FROM case_events ev WHERE ev.notification_id = n.id
        ) e ON true
        WHERE n.status = 'sent' AND n.template NOT IN {_AFTER_OUTCOME}
        GROUP BY 1, 2 ORDER BY 1 NULLS LAST, 2"""
    return [FunnelRow(**r) for r in _rows(conn, sql, _params(f))]


# --- churn -------------------------------------------------------------------------------


def churn(conn: Connection, f: Filters) -> list[ChurnRow]:
    """Involuntary churn in the period and the MRR it cost, per currency."""
    join = " JOIN customers cu ON cu.id = s.customer_id" if f.segment else ""
    extra = (" AND s.currency = :currency" if f.currency else "") + (
        " AND cu.segment = :segment" if f.segment else ""
    )
    sql = f"""
        WITH churned AS (
            SELECT coalesce(s.currency, '{NO_CURRENCY}') AS currency,
                   count(*) AS churned, coalesce(sum({_MRR}), 0) AS churned_mrr
            FROM subscriptions s{join}
            WHERE s.id IN (SELECT c.subscription_id FROM dunning_cases c
                           WHERE c.end_action = 'cancel_subscription' AND c.state = 'canceled'
                             AND c.closed_at >= :start AND c.closed_at < :end){extra}
            GROUP BY 1
        ), active AS (
            SELECT coalesce(s.currency, '{NO_CURRENCY}') AS currency,
                   count(*) AS active_at_start, coalesce(sum({_MRR}), 0) AS mrr_at_start
            FROM subscriptions s{join}
            WHERE ((s.canceled_at IS NULL AND s.status <> 'canceled') OR s.canceled_at >= :start)
              AND s.status NOT IN ('incomplete', 'incomplete_expired')
              AND EXISTS (SELECT 1 FROM invoices i WHERE i.subscription_id = s.id
                          AND i.processor_created < :start){extra}
            GROUP BY 1
        )
        SELECT coalesce(a.currency, ch.currency) AS currency,
               coalesce(a.active_at_start, 0) AS active_at_start,
               coalesce(ch.churned, 0) AS churned,
               round(coalesce(a.mrr_at_start, 0))::bigint AS mrr_at_start,
               round(coalesce(ch.churned_mrr, 0))::bigint AS churned_mrr
        FROM active a FULL JOIN churned ch ON ch.currency = a.currency
        ORDER BY 1"""
    return [
        ChurnRow(
            **r,
            churn_rate=ratio(r["churned"], r["active_at_start"]),
            mrr_churn_rate=ratio(r["churned_mrr"], r["mrr_at_start"]),
        )
        for r in _rows(conn, sql, _params(f))
    ]


# --- the headline ----------------------------------------------------------------------


def headline(conn: Connection, f: Filters) -> list[HeadlineRow]:
    """The headline figures per currency: failure, recovery, time to recovery, churn."""
    cohort = {r["currency"]: r for r in cohort_totals(conn, f)}
    renewals = renewal_failures(conn, f)
    churned = {r.currency: r for r in churn(conn, f)}
    out: list[HeadlineRow] = []
    for currency in sorted(cohort.keys() | renewals.keys() | churned.keys()):
        c = cohort.get(currency) or {}
        attempted, failed = renewals.get(currency, (0, 0))
        ch = churned.get(currency)
        opened, closed = c.get("cases_opened", 0), c.get("cases_closed", 0)
        recovered, recovered_amount = c.get("cases_recovered", 0), c.get("recovered_amount", 0)
        closed_amount = c.get("closed_failed_amount", 0)
        out.append(
            HeadlineRow(
                currency=currency,
                renewals_attempted=attempted,
                renewals_failed=failed,
                failure_rate=ratio(failed, attempted),
                cases_opened=opened,
                cases_closed=closed,
                cases_open=opened - closed,
                cases_recovered=recovered,
                recovery_rate=ratio(recovered, closed),
                failed_amount=c.get("failed_amount", 0),
                closed_failed_amount=closed_amount,
                recovered_amount=recovered_amount,
                recovery_rate_amount=ratio(recovered_amount, closed_amount),
                median_hours_to_recovery=c.get("median_hours"),
                p90_hours_to_recovery=c.get("p90_hours"),
                active_subscriptions_at_start=ch.active_at_start if ch else 0,
                churned_subscriptions=ch.churned if ch else 0,
                involuntary_churn_rate=ch.churn_rate if ch else None,
                churned_mrr=ch.churned_mrr if ch else 0,
            )
        )
    return out


# --- at risk -----------------------------------------------------------------------------


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
    return {**_params(f), "as_of": as_of, "horizon": as_of + timedelta(days=days)}


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
    return [AtRiskRow(**r) for r in _rows(conn, sql, _at_risk_params(f, as_of, days))]


def at_risk_summary(
    conn: Connection, f: Filters, as_of: datetime, days: int = AT_RISK_DAYS
) -> list[AtRiskSummaryRow]:
    """Renewals at risk per currency: how many and their amount."""
    sql = f"""
        SELECT coalesce(s.currency, '{NO_CURRENCY}') AS currency, count(*) AS subscriptions,
            coalesce(sum(coalesce(s.upcoming_amount, s.amount, 0)), 0)::bigint AS amount
        {_at_risk_sql(f)}
        GROUP BY 1 ORDER BY 1"""
    return [AtRiskSummaryRow(**r) for r in _rows(conn, sql, _at_risk_params(f, as_of, days))]


# --- for the filters ---------------------------------------------------------------------


def segments(conn: Connection) -> list[str]:
    """Customer segments known to the ledger."""
    sql = "SELECT DISTINCT segment FROM customers WHERE segment IS NOT NULL ORDER BY 1"
    return [r[0] for r in conn.execute(text(sql))]
