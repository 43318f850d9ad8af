"""Run policies and baselines through worlds, and judge the result against the goal.

Why one entry point: the CLI, the API and the benchmark all call :func:`run`, so they
report the same figures for the same seed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dunning.backtest.cases import draw_cases
from dunning.backtest.deciders import DAILY_BASELINE, FIXED_BASELINE, Decider
from dunning.backtest.report import (
    Summary,
    by_class,
    class_table,
    policy_table,
    ratios,
    violations_table,
)
from dunning.backtest.simulate import run_case
from dunning.backtest.world import World

GOAL_MONEY = 1.10  # at least this multiple of the fixed schedule's recovered dollars
GOAL_RETRIES = 0.70  # with at most this multiple of its retries per case


@dataclass
class WorldRun:
    """Every policy in one world."""

    world: World
    summaries: list[Summary]
    classes: dict[str, dict[str, Summary]]
    seconds: float
    cases: int

    def summary(self, name: str) -> Summary | None:
        return next((s for s in self.summaries if s.name == name), None)

    def goal(self, name: str) -> dict[str, Any]:
        """The issue's benchmark for policy ``name`` against the fixed schedule."""
        s, base, daily = (
            self.summary(name),
            self.summary(FIXED_BASELINE),
            self.summary(DAILY_BASELINE),
        )
        if s is None or base is None:
            return {}
        money, retries = ratios(s, base)
        stretch = daily is not None and s.recovered_usd >= daily.recovered_usd
        passed = (
            money is not None
            and retries is not None
            and money >= GOAL_MONEY
            and retries <= GOAL_RETRIES
            and s.total_violations == 0
        )
        return {
            "policy": name,
            "money_x_fixed": None if money is None else round(money, 3),
            "retries_x_fixed": None if retries is None else round(retries, 3),
            "violations": s.total_violations,
            "passed": passed,
            "stretch_daily_dollars": stretch,
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "world": self.world.name,
            "description": self.world.description,
            "cases": self.cases,
            "seconds": round(self.seconds, 2),
            "policies": [s.as_dict() for s in self.summaries],
            "by_class": {
                policy: {cls: s.as_dict() for cls, s in per.items()}
                for policy, per in self.classes.items()
            },
        }


@dataclass
class Backtest:
    """A run over one or more worlds; ``subject`` is the policy the goal is judged for."""

    runs: list[WorldRun]
    subject: str
    seed: int
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "subject": self.subject,
            "goal": {"money_x_fixed_at_least": GOAL_MONEY, "retries_x_fixed_at_most": GOAL_RETRIES},
            "worlds": [{**r.as_dict(), "goal": r.goal(self.subject)} for r in self.runs],
            "notes": self.notes,
        }

    def text(self, *, classes: bool = True) -> str:
        """The tables, one block per world, and the goal line for the subject."""
        out: list[str] = []
        for r in self.runs:
            out.append(
                f"== world {r.world.name}: {r.world.description} "
                f"({r.cases} cases, seed {self.seed}, {r.seconds:.1f} s)"
            )
            out.append(policy_table(r.summaries, r.summary(FIXED_BASELINE)))
            out.append(violations_table(r.summaries))
            if classes:
                out.append("")
                out.append(class_table(r.classes))
            out.append("")
        if len(self.runs) > 1:
            out.append(sweep_table(self))
        out += self.notes
        return "\n".join(out)


def sweep_table(bt: Backtest) -> str:
    """One line per world: the subject against the fixed schedule."""
    head = f"{'world':<18} {'$ x fixed':>9} {'retries x fixed':>15} {'viol':>5} {'goal':>5}"
    lines = [f"goal for {bt.subject}: >= {GOAL_MONEY}x dollars, <= {GOAL_RETRIES}x retries, 0 viol"]
    lines += [head, "-" * len(head)]
    for r in bt.runs:
        g = r.goal(bt.subject)
        if not g:
            continue
        lines.append(
            f"{r.world.name[:18]:<18} {g['money_x_fixed']!s:>9} {g['retries_x_fixed']!s:>15} "
            f"{g['violations']:>5} {'pass' if g['passed'] else 'FAIL':>5}"
        )
    return "\n".join(lines)


def run_world(world: World, deciders: Sequence[Decider], n: int, seed: int) -> WorldRun:
    """Every decider on the same ``n`` cases of ``world`` (common random numbers)."""
    started = time.perf_counter()
    cases = draw_cases(world, n, seed)
    summaries: list[Summary] = []
    classes: dict[str, dict[str, Summary]] = {}
    for decider in deciders:
        results = [run_case(world, case, decider) for case in cases]
        s = Summary(decider.name)
        for r in results:
            s.add(r)
        summaries.append(s)
        classes[decider.name] = by_class(decider.name, results)
    return WorldRun(world, summaries, classes, time.perf_counter() - started, n)


def run(
    deciders: Sequence[Decider], worlds: Sequence[World], *, n: int, seed: int, subject: str
) -> Backtest:
    """Every decider in every world."""
    names = [d.name for d in deciders]
    if len(set(names)) != len(names):
        raise ValueError(f"two policies have the same name: {names}")
    return Backtest([run_world(w, deciders, n, seed) for w in worlds], subject, seed)
