"""The cohort split up: by a dimension, by policy version (A/B arms), by email step."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, text

from dunning.reports.metrics.sql import (
    CLOSED,
    COHORT_AGGREGATES,
    CURRENCY,
    RECOVERED,
    cohort,
    params,
    rows,
    with_rates,
)
from dunning.reports.schemas import ArmRow, ArmStatus, BreakdownRow, Filters, FunnelRow
from dunning.reports.stats import ratio, wilson_interval

DIMENSIONS: Mapping[str, str] = {
    "decline_class": "c.decline_class",  # the class of the case's last failure
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


def breakdown(conn: Connection, f: Filters, dimension: str) -> list[BreakdownRow]:
    """The cohort grouped by ``dimension`` (one of ``DIMENSIONS``), per currency."""
    expression = DIMENSIONS[dimension]
    sql = f"""
        SELECT coalesce(c.value, '{UNKNOWN}') AS value, {CURRENCY} AS currency,
            {COHORT_AGGREGATES}
        FROM (SELECT c.state, c.amount, c.recovered_amount, c.currency,
                     {expression} AS value
              FROM {cohort(f)}) c
        GROUP BY 1, 2 ORDER BY 2, cases_opened DESC, 1"""
    return [BreakdownRow(dimension=dimension, **with_rates(r)) for r in rows(conn, sql, params(f))]


def _arm_status(policy_id: int | None, active: int | None, split: int | None) -> ArmStatus:
    if policy_id is None:
        return ArmStatus.NONE
    if policy_id == active:
        return ArmStatus.ACTIVE
    return ArmStatus.SPLIT if policy_id == split else ArmStatus.INACTIVE


def ab_arms(conn: Connection, f: Filters) -> list[ArmRow]:
    """Recovery rate of each policy version over the cohort, with a 95 % Wilson interval."""
    sql = f"""
        SELECT a.policy_id, p.name || ' v' || p.version AS policy, a.cases_opened, a.n,
            a.recovered
        FROM (SELECT c.policy_id, count(*) AS cases_opened,
                  count(*) FILTER (WHERE {CLOSED}) AS n,
                  count(*) FILTER (WHERE {RECOVERED}) AS recovered
              FROM {cohort(f)}
              GROUP BY 1) a
        LEFT JOIN retry_policies p ON p.id = a.policy_id
        ORDER BY 1 NULLS LAST"""
    arms = list(rows(conn, sql, params(f)))
    activation = conn.execute(
        text("SELECT active_policy_id, split_policy_id FROM policy_activation WHERE id = 1")
    ).one_or_none()
    active, split = (activation[0], activation[1]) if activation else (None, None)
    out: list[ArmRow] = []
    for r in arms:
        policy_id = r["policy_id"]
        interval = wilson_interval(r["recovered"], r["n"])
        out.append(
            ArmRow(
                policy_id=policy_id,
                policy=r["policy"] or ("no policy" if policy_id is None else f"#{policy_id}"),
                status=_arm_status(policy_id, active, split),
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
    Emails only: an SMS is counted in the ``sms`` row of the channels table.

    ``step`` is the policy step's number; the final notice and "action required" emails
    have none and are told apart by their template.
    """
    sql = f"""
        SELECT n.step, n.template, count(*) AS sent,
            count(*) FILTER (WHERE e.opened OR e.updated) AS link_opened,
            count(*) FILTER (WHERE e.updated) AS card_updated,
            count(*) FILTER (WHERE e.updated AND c.state = 'recovered') AS paid
        FROM (SELECT c.id, c.state FROM {cohort(f)}) c
        JOIN notifications n ON n.case_id = c.id
        LEFT JOIN LATERAL (
            SELECT coalesce(bool_or(ev.kind = 'link_opened'), false) AS opened,
                   coalesce(bool_or(ev.kind = 'card_updated'), false) AS updated
            FROM case_events ev WHERE ev.notification_id = n.id
        ) e ON true
        WHERE n.status = 'sent' AND n.channel = 'email' AND n.template NOT IN {_AFTER_OUTCOME}
        GROUP BY 1, 2 ORDER BY 1 NULLS LAST, 2"""
    return [FunnelRow(**r) for r in rows(conn, sql, params(f))]
