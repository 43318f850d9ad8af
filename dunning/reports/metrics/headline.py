"""The headline figures: failure, recovery, time to recovery and churn, per currency."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection

from dunning.reports.metrics.churn import churn
from dunning.reports.metrics.cohort import Groups
from dunning.reports.metrics.recovery import cohort_totals, renewal_failures
from dunning.reports.schemas import ChurnRow, Filters, HeadlineRow
from dunning.reports.stats import ratio


def headline(
    conn: Connection,
    f: Filters,
    churn_rows: Sequence[ChurnRow] | None = None,
    groups: Groups | None = None,
) -> list[HeadlineRow]:
    """One row per currency seen in the cohort, the renewals or the churn.

    ``churn_rows``: ``churn(conn, f)``, and ``groups``: ``cohort_groups`` of ``f`` with
    ``recovery.TOTALS``, when the caller has them already (the dashboard shows these
    tables too and should not scan the subscriptions or the cohort twice)."""
    totals = cohort_totals(conn, f, groups)
    cohort = {r["currency"]: r for r in totals}
    renewals = renewal_failures(conn, f, {cur: r["cases_opened"] for cur, r in cohort.items()})
    churned = {r.currency: r for r in (churn(conn, f) if churn_rows is None else churn_rows)}
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
                subscriptions_started=ch.started_in_period if ch else 0,
                churned_subscriptions=ch.churned if ch else 0,
                involuntary_churn_rate=ch.churn_rate if ch else None,
                churned_mrr=ch.churned_mrr if ch else 0,
            )
        )
    return out
