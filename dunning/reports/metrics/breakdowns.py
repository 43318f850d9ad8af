"""The cohort split up: by a dimension, by policy version (A/B arms), by email step."""

from __future__ import annotations

from sqlalchemy import Connection, text

from dunning.reports.metrics.cohort import Groups, cohort_groups, counts
from dunning.reports.metrics.rollup import Rolled
from dunning.reports.metrics.sql import Ranges, among_cases, cohort, rows, with_rates
from dunning.reports.schemas import ArmRow, ArmStatus, BreakdownRow, Filters, FunnelRow
from dunning.reports.stats import ratio, wilson_interval

DIMENSIONS = ("decline_class", "decline_code", "card_brand", "plan", "segment", "policy")
"""What a breakdown can group the cohort by: groupings of ``cohort.GROUPINGS``."""

# Emails about an outcome (paid, canceled) are not steps of the dunning sequence.
_AFTER_OUTCOME = "('payment_recovered', 'subscription_canceled')"
# The emails a customer event of ``kind`` was reached through.
_EMAILS_WITH = (
    "SELECT ev.notification_id FROM case_events ev"
    " WHERE ev.kind = '{kind}' AND ev.notification_id IS NOT NULL"
)


def breakdown(
    conn: Connection, f: Filters, dimension: str, groups: Groups | None = None
) -> list[BreakdownRow]:
    """The cohort grouped by ``dimension`` (one of ``DIMENSIONS``), per currency.
    ``groups``: ``cohort_groups`` with ``dimension`` when the caller has them."""
    found = (groups or cohort_groups(conn, f, [dimension])).rows(dimension, f.currency)
    found.sort(key=lambda r: (r["currency"], -r["cases_opened"]))  # then value, as queried
    return [
        BreakdownRow(dimension=dimension, value=r["value"], **with_rates(counts(r))) for r in found
    ]


def _arm_status(policy_id: int | None, active: int | None, split: int | None) -> ArmStatus:
    if policy_id is None:
        return ArmStatus.NONE
    if policy_id == active:
        return ArmStatus.ACTIVE
    return ArmStatus.SPLIT if policy_id == split else ArmStatus.INACTIVE


def ab_arms(conn: Connection, f: Filters, groups: Groups | None = None) -> list[ArmRow]:
    """Recovery rate of each policy version over the cohort, with a 95 % Wilson interval.
    ``groups``: ``cohort_groups`` with ``policy_id`` when the caller has them."""
    by_policy: dict[int | None, dict[str, int]] = {}
    for r in (groups or cohort_groups(conn, f, ["policy_id"])).rows("policy_id", f.currency):
        arm = by_policy.setdefault(r["value"], {"cases_opened": 0, "n": 0, "recovered": 0})
        arm["cases_opened"] += r["cases_opened"]
        arm["n"] += r["cases_closed"]
        arm["recovered"] += r["cases_recovered"]
    ids = [p for p in by_policy if p is not None]
    sql = "SELECT id, name || ' v' || version FROM retry_policies WHERE id = ANY(:ids)"
    names: dict[int, str | None] = {row[0]: row[1] for row in conn.execute(text(sql), {"ids": ids})}
    activation = conn.execute(
        text("SELECT active_policy_id, split_policy_id FROM policy_activation WHERE id = 1")
    ).one_or_none()
    active, split = (activation[0], activation[1]) if activation else (None, None)
    out: list[ArmRow] = []
    for policy_id in sorted(by_policy, key=lambda p: (p is None, p or 0)):
        arm = by_policy[policy_id]
        interval = wilson_interval(arm["recovered"], arm["n"])
        out.append(
            ArmRow(
                policy_id=policy_id,
                policy="no policy"
                if policy_id is None
                else names.get(policy_id) or f"#{policy_id}",
                status=_arm_status(policy_id, active, split),
                cases_opened=arm["cases_opened"],
                n=arm["n"],
                recovered=arm["recovered"],
                recovery_rate=ratio(arm["recovered"], arm["n"]),
                ci_low=None if interval is None else interval[0],
                ci_high=None if interval is None else interval[1],
            )
        )
    return out


def _funnel(f: Filters, ranges: Ranges | None) -> str:
    return f"""
        SELECT c.currency, n.step, n.template, c.state = 'recovered' AS recovered,
            n.id IN ({_EMAILS_WITH.format(kind="link_opened")}) AS opened,
            n.id IN ({_EMAILS_WITH.format(kind="card_updated")}) AS updated,
            count(*) AS n
        FROM notifications n, {cohort(f, ranges)} AND n.case_id = c.id
          AND {among_cases("n.case_id")}
          AND n.status = 'sent' AND n.channel = 'email'
          AND n.template NOT IN {_AFTER_OUTCOME}
        GROUP BY 1, 2, 3, 4, 5, 6"""


FUNNEL = Rolled(
    "report_funnel",
    ("currency", "step", "template", "recovered", "opened", "updated", "n"),
    _funnel,
    bounded=True,
)
"""The cohort's dunning emails counted per stored currency, step, template and outcome."""


def funnel(conn: Connection, f: Filters) -> list[FunnelRow]:
    """Per dunning step: emails sent to the cohort → link opened → card updated → paid.
    Emails only: an SMS is counted in the ``sms`` row of the channels table.

    ``step`` is the policy step's number; the final notice and "action required" emails
    have none and are told apart by their template.

    Each email's events are two hashed lookups (``IN``), not a join grouped by email: a
    year's 350,000 emails group into a handful of (step, template, outcome) rows, which
    the workers can count in parallel. Settled months from the rollup.
    """
    emails, bind = FUNNEL.rows(conn, f)
    sql = f"""
        SELECT e.step, e.template, sum(e.n)::bigint AS sent,
            coalesce(sum(e.n) FILTER (WHERE e.opened OR e.updated), 0)::bigint AS link_opened,
            coalesce(sum(e.n) FILTER (WHERE e.updated), 0)::bigint AS card_updated,
            coalesce(sum(e.n) FILTER (WHERE e.updated AND e.recovered), 0)::bigint AS paid
        FROM ({emails}) e
        GROUP BY 1, 2 ORDER BY 1 NULLS LAST, 2"""
    return [FunnelRow(**r) for r in rows(conn, sql, bind)]
