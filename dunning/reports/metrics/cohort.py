"""The cohort's counts, grouped: every table that counts the cohort's cases (headline,
months, days to recovery, channels, A/B arms, breakdowns) reads its groups from here.

Why: the dashboard shows a dozen tables over the same cases; each scanning and grouping
the cohort again cost seconds at a million cases. Here the cases are read once and
grouped in two steps: by every key asked for at once (a few thousand groups), then each
table's ``GROUPING SETS`` group summed from those. A table asked alone (API, CSV) runs
the same SQL with only its own grouping, so a figure has one definition wherever read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from dunning.reports.metrics.rollup import GROUPS, split
from dunning.reports.metrics.sql import (
    COHORT_AGGREGATES,
    NO_CURRENCY,
    RECOVERED,
    WHOLE_DAYS_TO_RECOVERY,
    Ranges,
    cohort,
    rows,
)
from dunning.reports.schemas import Filters

MAX_DAY = 30  # the last bucket of the time-to-recovery distribution: 30 days or more
UNKNOWN = "unknown"

JOINS: Mapping[str, str] = {
    "plan": "LEFT JOIN subscriptions ps ON ps.id = c.subscription_id",
    "segment": "LEFT JOIN customers sc ON sc.id = c.customer_id",
    "policy": "LEFT JOIN retry_policies rp ON rp.id = c.policy_id",
}
"""What a grouping needs joined to each case, by name."""


@dataclass(frozen=True)
class Grouping:
    """One way of grouping the cohort (always per currency too): its key and joins."""

    key: str | None
    joins: tuple[str, ...] = ()


def _known(value: str) -> str:
    return f"coalesce({value}, '{UNKNOWN}')"


GROUPINGS: Mapping[str, Grouping] = {
    "total": Grouping(None),
    "month": Grouping("(date_trunc('month', c.opened_at AT TIME ZONE 'UTC'))::date"),
    "day": Grouping(
        f"CASE WHEN {RECOVERED} AND c.closed_at IS NOT NULL"
        f" THEN least({WHOLE_DAYS_TO_RECOVERY}, {MAX_DAY})::int END"
    ),
    "channel": Grouping(f"CASE WHEN {RECOVERED} THEN coalesce(c.recovered_by, 'processor') END"),
    "policy_id": Grouping("c.policy_id"),
    # The breakdowns (``breakdown/<dimension>``), a missing value as ``unknown``:
    "decline_class": Grouping(_known("c.decline_class")),  # the class of the last failure
    # Of the first failed charge, kept on the case (``cases.service``): no join.
    "decline_code": Grouping(_known("c.first_decline_code")),
    "card_brand": Grouping(_known("c.first_card_brand")),
    "plan": Grouping(_known("coalesce(ps.plan_name, ps.plan_id)"), ("plan",)),
    "segment": Grouping(_known("sc.segment"), ("segment",)),
    "policy": Grouping(_known("rp.name || ' v' || rp.version"), ("policy",)),
}
"""Every grouping a table reads, by name."""


@dataclass
class Groups:
    """The grouped cohort: per grouping name, rows with ``value``, the case's currency as
    stored (``raw``, maybe NULL) and the aggregates."""

    by: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def rows(self, grouping: str, currency: str | None = None) -> list[dict[str, Any]]:
        """The groups of ``grouping`` labelled by currency (NULL as ``xxx``), in the
        query's order; only the cases stored in ``currency`` when one is given (as the
        cohort's ``c.currency = :currency``)."""
        merged: dict[tuple[Any, str], dict[str, Any]] = {}
        for r in self.by.get(grouping, []):
            if currency is not None and r["raw"] != currency:
                continue
            label = NO_CURRENCY if r["raw"] is None else r["raw"]
            key = (r["value"], label)
            if key in merged:
                for name, v in r.items():
                    if name not in ("value", "raw", "currency"):
                        merged[key][name] += v
            else:
                merged[key] = {**r, "currency": label}
        out = list(merged.values())
        for r in out:
            del r["raw"]
        return out


ROLLED = ("month", "day", "channel", "policy_id", "decline_class", "decline_code", "card_brand")
"""The keyed groupings a settled month's rollup keeps (the columns of ``report_cohort_groups``
have their names): keys of the case alone, so only a change to a case can change them."""


def fine_groups(f: Filters, names: Sequence[str], ranges: Ranges | None = None) -> str:
    """The cohort of ``f`` (in ``ranges`` of it, when given) grouped by the currency and
    every key of ``names`` at once: columns ``currency``, ``k<i>`` (the key of
    ``names[i]``) and ``COHORT_AGGREGATES``. A settled month's rollup is this of the month
    (``reports.rollup``)."""
    joins = [j for n in names for j in GROUPINGS[n].joins]
    keys = [GROUPINGS[n].key for n in names]
    inner = [f"{k} AS k{i}" for i, k in enumerate(keys) if k is not None]
    columns = ", ".join(["c.currency", "c.state", "c.amount", "c.recovered_amount", *inner])
    fine = ", ".join(["c.currency", *(f"c.k{i}" for i, k in enumerate(keys) if k is not None)])
    return f"""SELECT {fine}, {COHORT_AGGREGATES}
              FROM (SELECT {columns}
                    FROM {_with_joins(cohort(f, ranges), dict.fromkeys(joins))}) c
              GROUP BY {fine}"""


def _rolled_groups(f: Filters, names: Sequence[str]) -> str:
    """``fine_groups`` of the months ``:rolled``, from their rollup."""
    keys = [f"c.{n} AS k{i}" for i, n in enumerate(names) if GROUPINGS[n].key is not None]
    sums = ", ".join(f"c.{n}" for n in _names(COHORT_AGGREGATES))
    currency = " AND c.currency = :currency" if f.currency else ""
    return f"""SELECT {", ".join(["c.currency", *keys, sums])}
              FROM {GROUPS} c WHERE c.month = ANY(:rolled){currency}"""


def cohort_groups(conn: Connection, f: Filters, groupings: Iterable[str]) -> Groups:
    """The cohort of ``f`` grouped, in one scan, by each of ``groupings`` (names of
    ``GROUPINGS``) and the currency: ``COHORT_AGGREGATES``. The settled months of the
    period that the rollup holds are read from it (not for a segment: a customer's
    segment is no key of the case)."""
    names = list(dict.fromkeys(groupings))
    keys = [(n, GROUPINGS[n].key) for n in names]
    rollable = f.segment is None and all(k is None or n in ROLLED for n, k in keys)
    parts = split(conn, f, rollable)
    sets = ", ".join(f"(c.k{i})" if k is not None else "()" for i, (_, k) in enumerate(keys))
    keyed = [f"c.k{i}" for i, (_, k) in enumerate(keys) if k is not None]
    grouping = f"GROUPING({', '.join(keyed)})" if keyed else "0"
    sums = ", ".join(f"sum(c.{n})::bigint AS {n}" for n in _names(COHORT_AGGREGATES))
    # Two steps: the cases grouped by every key at once (a few thousand groups), then
    # each grouping set summed from those: one hash lookup per case instead of one per set.
    sql = f"""
        SELECT c.currency AS raw, {grouping} AS grp, {", ".join(keyed) or "NULL AS k"}, {sums}
        FROM ({parts.union(lambda r: fine_groups(f, names, r), _rolled_groups(f, names))}) c
        GROUP BY c.currency, GROUPING SETS ({sets})
        ORDER BY grp, coalesce(c.currency, '{NO_CURRENCY}'), cases_opened DESC,
            {", ".join(keyed) or "1"}"""
    by_mask = _masks(keys)
    out = Groups({n: [] for n in names})
    for r in rows(conn, sql, parts.params(f)):
        name, index = by_mask[r.pop("grp")]
        values = {k: r.pop(k) for k in list(r) if k.startswith("k") and k[1:].isdigit()}
        r.pop("k", None)
        out.by[name].append({"value": values.get(f"k{index}"), **r})
    return out


def _names(aggregates: str) -> list[str]:
    """The output names of a list of ``… AS name`` aggregates."""
    return re.findall(r"\bAS (\w+)", aggregates)


def _with_joins(cohort_sql: str, joins: Iterable[str]) -> str:
    """``cohort(f)``'s FROM … WHERE with the joins put before its WHERE."""
    head, _, where = cohort_sql.partition(" WHERE ")
    return " ".join([head, *(JOINS[j] for j in joins), "WHERE", where])


def _masks(keys: list[tuple[str, str | None]]) -> dict[int, tuple[str, int]]:
    """``GROUPING()``'s value for each grouping set: a bit per keyed column, set when the
    column is not grouped (the leftmost is the highest bit)."""
    keyed = [i for i, (_, k) in enumerate(keys) if k is not None]
    width = len(keyed)
    out: dict[int, tuple[str, int]] = {}
    for i, (name, key) in enumerate(keys):
        mask = (1 << width) - 1
        if key is not None:
            mask &= ~(1 << (width - 1 - keyed.index(i)))
        out[mask] = (name, i)
    return out


COUNTS = (
    "currency",
    "cases_opened",
    "cases_closed",
    "cases_recovered",
    "failed_amount",
    "closed_failed_amount",
    "recovered_amount",
)
"""A group's currency and ``COHORT_AGGREGATES``: what the cohort tables show."""


def counts(row: dict[str, Any]) -> dict[str, Any]:
    """A group's currency and ``COHORT_AGGREGATES`` only."""
    return {k: row[k] for k in COUNTS}
