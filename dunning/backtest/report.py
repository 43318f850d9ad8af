"""Add simulated cases up: per policy, per decline class, and against the baselines.

Why dollars first: the service exists to win back failed revenue, so the headline is
the share of the failed amount recovered; cases, retries (each costs a fee and a bit of
the card's standing with the issuer) and network violations say at what price.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dunning.backtest.checker import RULES
from dunning.backtest.simulate import CaseResult

CURVE_DAYS = 60


@dataclass
class Summary:
    """One policy (or one policy and decline class) in one world."""

    name: str
    cases: int = 0
    failed_usd: float = 0.0
    recovered_usd: float = 0.0
    recovered_cases: int = 0
    retries: int = 0
    by: Counter[str] = field(default_factory=Counter)
    violations: Counter[str] = field(default_factory=Counter)
    days: list[float] = field(default_factory=list)
    curve: list[float] = field(default_factory=lambda: [0.0] * (CURVE_DAYS + 1))

    def add(self, r: CaseResult) -> None:
        self.cases += 1
        self.failed_usd += r.usd
        self.retries += r.retries
        self.violations.update(r.violations)
        if r.recovered and r.days is not None:
            self.recovered_cases += 1
            self.recovered_usd += r.usd
            self.by[r.by or "?"] += 1
            self.days.append(r.days)
            day = min(CURVE_DAYS, int(r.days))
            self.curve[day] += r.usd

    @property
    def amount_pct(self) -> float:
        return 100 * self.recovered_usd / self.failed_usd if self.failed_usd else 0.0

    @property
    def cases_pct(self) -> float:
        return 100 * self.recovered_cases / self.cases if self.cases else 0.0

    @property
    def retries_per_case(self) -> float:
        return self.retries / self.cases if self.cases else 0.0

    @property
    def retries_per_recovery(self) -> float | None:
        return self.retries / self.recovered_cases if self.recovered_cases else None

    @property
    def median_days(self) -> float | None:
        return statistics.median(self.days) if self.days else None

    @property
    def total_violations(self) -> int:
        return sum(self.violations.values())

    def cumulative_pct(self) -> list[float]:
        """Recovered share of the failed amount by day since the failure (the chart)."""
        out, total = [], 0.0
        for value in self.curve:
            total += value
            out.append(100 * total / self.failed_usd if self.failed_usd else 0.0)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.name,
            "cases": self.cases,
            "failed_usd": round(self.failed_usd, 2),
            "recovered_usd": round(self.recovered_usd, 2),
            "recovered_amount_pct": round(self.amount_pct, 2),
            "recovered_cases_pct": round(self.cases_pct, 2),
            "retries_per_case": round(self.retries_per_case, 3),
            "retries_per_recovery": _round(self.retries_per_recovery, 3),
            "median_days_to_recovery": _round(self.median_days, 2),
            "recovered_by": dict(sorted(self.by.items())),
            "violations": {rule: self.violations.get(rule, 0) for rule in RULES},
        }


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def summarize(name: str, results: Iterable[CaseResult]) -> Summary:
    """All cases of one policy."""
    s = Summary(name)
    for r in results:
        s.add(r)
    return s


def by_class(name: str, results: Iterable[CaseResult]) -> dict[str, Summary]:
    """The same figures per decline class of the first failure."""
    out: dict[str, Summary] = {}
    for r in results:
        key = str(r.decline_class)
        out.setdefault(key, Summary(name)).add(r)
    return dict(sorted(out.items()))


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def ratios(s: Summary, base: Summary | None) -> tuple[float | None, float | None]:
    """Recovered dollars and retries per case as multiples of the baseline's."""
    if base is None or not base.recovered_usd or not base.retries_per_case:
        return None, None
    return s.recovered_usd / base.recovered_usd, s.retries_per_case / base.retries_per_case


def policy_table(summaries: Sequence[Summary], base: Summary | None) -> str:
    """The per-policy table (``base``: the fixed +3/+5/+7/+14 schedule, for the ratios)."""
    head = (
        f"{'policy':<24} {'$ rec %':>7} {'cases %':>7} {'retries':>7} {'ret/rec':>7} "
        f"{'med d':>5} {'$ x fix':>7} {'ret x fix':>9} {'viol':>5}  by retry/updater/customer"
    )
    lines = [head, "-" * len(head)]
    for s in summaries:
        money, retries = ratios(s, base)
        by = "/".join(str(s.by.get(k, 0)) for k in ("retry", "card_updater", "customer"))
        lines.append(
            f"{s.name[:24]:<24} {s.amount_pct:>7.2f} {s.cases_pct:>7.2f} "
            f"{s.retries_per_case:>7.2f} {_num(s.retries_per_recovery, '.2f'):>7} "
            f"{_num(s.median_days, '.1f'):>5} {_num(money, '.3f'):>7} "
            f"{_num(retries, '.3f'):>9} {s.total_violations:>5}  {by}"
        )
    return "\n".join(lines)


def violations_table(summaries: Sequence[Summary]) -> str:
    """Network-rule violations by rule (only policies that have any)."""
    bad = [s for s in summaries if s.total_violations]
    if not bad:
        return "network-rule violations: none"
    lines = ["network-rule violations by rule:"]
    for s in bad:
        parts = ", ".join(f"{rule} {s.violations[rule]}" for rule in RULES if s.violations[rule])
        lines.append(f"  {s.name}: {parts}")
    return "\n".join(lines)


def class_table(classes: dict[str, dict[str, Summary]]) -> str:
    """Recovered amount and retries per decline class, one row per class and policy."""
    head = f"{'class':<24} {'policy':<24} {'cases':>6} {'$ rec %':>7} {'retries':>7} {'viol':>5}"
    lines = [head, "-" * len(head)]
    names = sorted({cls for per in classes.values() for cls in per})
    for cls in names:
        for policy, per in classes.items():
            s = per.get(cls)
            if s is None:
                continue
            lines.append(
                f"{cls[:24]:<24} {policy[:24]:<24} {s.cases:>6} {s.amount_pct:>7.2f} "
                f"{s.retries_per_case:>7.2f} {s.total_violations:>5}"
            )
    return "\n".join(lines)
