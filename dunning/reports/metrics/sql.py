"""The SQL fragments that define the metrics, and the helpers every metric query uses.

Why one place: "closed", "recovered", "the amount paid" and "the cohort" are each
written once, so two tables can never count the same thing differently.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Connection, text

from dunning.reports.schemas import Filters
from dunning.reports.stats import ratio

NO_CURRENCY = "xxx"

CURRENCY = f"coalesce(c.currency, '{NO_CURRENCY}')"
CLOSED = "c.state <> 'open'"
RECOVERED = "c.state = 'recovered'"
PAID = "coalesce(c.recovered_amount, c.amount, 0)"
COHORT_AGGREGATES = f"""
    count(*) AS cases_opened,
    count(*) FILTER (WHERE {CLOSED}) AS cases_closed,
    count(*) FILTER (WHERE {RECOVERED}) AS cases_recovered,
    coalesce(sum(c.amount), 0)::bigint AS failed_amount,
    coalesce(sum(c.amount) FILTER (WHERE {CLOSED}), 0)::bigint AS closed_failed_amount,
    coalesce(sum({PAID}) FILTER (WHERE {RECOVERED}), 0)::bigint AS recovered_amount
"""
SECONDS_TO_RECOVERY = "greatest(extract(epoch FROM c.closed_at - c.opened_at), 0)"
WHOLE_DAYS_TO_RECOVERY = "greatest(date_part('day', c.closed_at - c.opened_at), 0)"
"""``floor(SECONDS_TO_RECOVERY / 86400)``: the difference of two instants is an interval of
whole 24-hour days and a time under a day (never months), so its day field is the floor;
read from the interval, not divided as ``numeric``, which costs a second a million cases,
and as ``float8`` (``date_part``; a whole number, so exact), not as ``extract``'s
``numeric``, which costs a tenth of one."""
RENEWAL = (
    "(i.billing_reason = 'subscription_cycle' OR (i.billing_reason IS NULL"
    " AND coalesce(i.subscription_id, {case_subscription}) IS NOT NULL))"
)
"""A renewal invoice ``i``; format ``case_subscription`` with the case's column or NULL."""
NOT_CYCLE = "(i.billing_reason <> 'subscription_cycle' OR i.billing_reason IS NULL)"
"""Invoices ``i`` that may not be renewals: the predicate of ``ix_invoices_not_cycle``."""
PAID_RENEWAL = (
    "i.status = 'paid' AND i.subscription_id IS NOT NULL"
    " AND (i.billing_reason = 'subscription_cycle' OR i.billing_reason IS NULL)"
    " AND coalesce(i.amount_paid, i.amount_due, 0) > 0"
)
"""A paid renewal invoice ``i`` with something paid: ``RENEWAL`` of an invoice that names its
subscription, written as the predicate of ``ix_invoices_paid_renewals`` so the failure
rate's denominator is read from that index alone."""


def _instant(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


Ranges = Sequence[tuple[date, date]]
"""Parts ``[start, end)`` of a period: what is left of it to read live when the settled
months of a rollup (``metrics.rollup``) are taken out."""


def params(f: Filters, ranges: Ranges = ()) -> dict[str, Any]:
    """The bind parameters of every metric query: the period as UTC instants, the filters
    (and ``ranges``, for ``cohort(f, ranges)``)."""
    bind = {
        "start": _instant(f.start),
        "end": _instant(f.end),
        "currency": f.currency,
        "segment": f.segment,
    }
    for i, (start, end) in enumerate(ranges):
        bind[f"r{i}_start"], bind[f"r{i}_end"] = _instant(start), _instant(end)
    return bind


def in_period(column: str, ranges: Ranges | None = None) -> str:
    """``column`` is in the period (in ``ranges`` of it, when given; their bounds are
    bound by ``params(f, ranges)``)."""
    if ranges is None:
        return f"{column} >= :start AND {column} < :end"
    inside = (f"({column} >= :r{i}_start AND {column} < :r{i}_end)" for i in range(len(ranges)))
    return f"({' OR '.join(inside)})"


def cohort(f: Filters, ranges: Ranges | None = None) -> str:
    """FROM … WHERE of the cohort, aliased ``c``: cases opened in the period (in
    ``ranges`` of it, when given; their bounds are bound by ``params(f, ranges)``)."""
    join = " JOIN customers cu ON cu.id = c.customer_id" if f.segment else ""
    where = [in_period("c.opened_at", ranges)]
    if f.currency:
        where.append("c.currency = :currency")
    if f.segment:
        where.append("cu.segment = :segment")
    return f"dunning_cases c{join} WHERE {' AND '.join(where)}"


def among_cases(column: str) -> str:
    """``column``, a case's id, is within the ids of the cohort's cases (``case_bounds``
    binds them). It rules out no row the cohort joins, but lets a table of rows about
    cases (emails, card-updater calls) be read through its index on the case for a
    month's cases: ids grow with time, so a month's cases are a narrow range of them."""
    return f"{column} BETWEEN :case_lo AND :case_hi"


def case_bounds(conn: Connection, f: Filters, ranges: Ranges | None = None) -> dict[str, Any]:
    """The bind parameters of ``among_cases``: the least and greatest id of the cohort's
    cases (in ``ranges`` of the period, when given). Read first, so the planner sees
    how wide they are (a year's: every row, a sequential scan)."""
    sql = (
        "SELECT min(b.id) AS case_lo, max(b.id) AS case_hi"
        f" FROM (SELECT c.id FROM {cohort(f, ranges)} OFFSET 0) b"
    )  # OFFSET 0: the cohort through its date index, not every case in id order
    return dict(conn.execute(text(sql), params(f, ranges or ())).one()._mapping)


def rows(conn: Connection, sql: str, bind: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The result rows as plain dicts."""
    for row in conn.execute(text(sql), dict(bind)):
        yield dict(row._mapping)


def with_rates(row: dict[str, Any]) -> dict[str, Any]:
    """Add both recovery rates to a row of ``COHORT_AGGREGATES`` (closed amount dropped)."""
    row["recovery_rate"] = ratio(row["cases_recovered"], row["cases_closed"])
    closed_amount = row.pop("closed_failed_amount")
    row["recovery_rate_amount"] = ratio(row["recovered_amount"], closed_amount)
    return row
