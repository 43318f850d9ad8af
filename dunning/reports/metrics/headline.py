"""The headline figures: failure, recovery, time to recovery and churn, per currency."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection

from dunning.reports.metrics.churn import churn
from dunning.reports.metrics.cohort import Groups, cohort_groups
from dunning.reports.metrics.recovery import (
    TOTALS,
    Counts,
    Percentiles,
    cohort_totals,
    not_renewal_cases,
    paid_first_time,
    recovery_percentiles,
    renewal_failures,
)
from dunning.reports.schemas import ChurnRow, Filters, HeadlineRow
from dunning.reports.snapshot import Read, together
from dunning.reports.stats import ratio


@dataclass(frozen=True)
class HeadlineReads:
    """What the headline reads, each of ``f`` with every currency the filter allows."""

    groups: Groups  # cohort_groups with recovery.TOTALS
    paid: Counts
    percentiles: Percentiles
    churn: Sequence[ChurnRow]
    not_renewal: Counts


def headline_reads(f: Filters, groupings: Sequence[str] = (TOTALS,)) -> list[Read]:
    """The reads behind ``HeadlineReads``, in its order (longest first, for
    ``snapshot.together``). ``groupings``: the cohort's, ``TOTALS`` among them (the
    dashboard's tables share the scan)."""
    return [
        lambda c: cohort_groups(c, f, groupings),
        lambda c: paid_first_time(c, f),
        lambda c: recovery_percentiles(c, f),
        lambda c: churn(c, f),
        lambda c: not_renewal_cases(c, f),
    ]


def headline(conn: Connection, f: Filters, reads: HeadlineReads | None = None) -> list[HeadlineRow]:
    """One row per currency seen in the cohort, the renewals or the churn.

    ``reads``: when the caller has them (the dashboard reads them side by side with its
    other tables); else they are read here, side by side."""
    if reads is None:
        reads = HeadlineReads(*together(conn, headline_reads(f)))
    totals = cohort_totals(conn, f, reads.groups, reads.percentiles)
    cohort = {r["currency"]: r for r in totals}
    per_currency = {cur: r["cases_opened"] for cur, r in cohort.items()}
    renewals = renewal_failures(per_currency, reads.not_renewal, reads.paid)
    churned = {r.currency: r for r in reads.churn}
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
