"""How long the backtest takes, and what each change of the default policy is worth.

    .venv/bin/python bench/backtest.py [--cases 20000] [--seed 1]
    .venv/bin/python bench/backtest.py --ablation [--cases 20000] [--seed 1]

The first prints wall and CPU time (one process, one core) for drawing the cases and
for the shipped default policy and the 4 baselines; the issue's target is 20,000 cases
x 5 policies in under 30 s on one core. ``--ablation`` walks from the version-1 default
to the shipped one, one change at a time, in the default world (the figures quoted in
config/policies/default.toml).
"""

from __future__ import annotations

import argparse
import copy
import time
import tomllib
from typing import Any

from dunning.backtest.cases import draw_cases
from dunning.backtest.deciders import Decider, EngineDecider, baselines
from dunning.backtest.report import Summary
from dunning.backtest.runner import run_world
from dunning.backtest.service import SHIPPED_DEFAULT
from dunning.backtest.simulate import run_case
from dunning.backtest.world import load_world
from dunning.policy.models import load_policy, policy_from_dict

_V1_EMAILS = [
    {"day": 0, "template": "payment_failed"},
    {"day": 3, "template": "payment_reminder"},
    {"day": 7, "template": "payment_reminder"},
]
# From version 1 to the shipped policy, one change at a time (cumulative).
STEPS: list[tuple[str, dict[str, Any]]] = [
    (
        "v1",
        {
            "limits": {"max_attempts": 8, "max_days": 21},
            "classes": {
                "insufficient_funds": {"action": "retry", "payday": True, "backoff_hours": [24]},
                "unknown": {"action": "retry", "payday": False, "backoff_hours": [24, 72, 120]},
            },
            "email_steps": _V1_EMAILS,
        },
    ),
    ("+ 28 days", {"limits": {"max_days": 28}}),
    (
        "+ unknown on paydays",
        {"classes": {"unknown": {"action": "retry", "payday": True, "backoff_hours": [48, 168]}}},
    ),
    (
        "+ nsf paydays spaced",
        {"classes": {"insufficient_funds": {"backoff_hours": [24, 120, 240]}}},
    ),
    ("+ 5 attempts", {"limits": {"max_attempts": 5}}),
    ("+ emails 10/14/21 (v2)", {"email_steps": None}),
]


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def ablation(n: int, seed: int) -> None:
    """The shipped policy rebuilt from version 1, one change at a time."""
    shipped = tomllib.loads(SHIPPED_DEFAULT.read_text(encoding="utf-8"))
    data = _merge(shipped, STEPS[0][1])
    deciders = []
    for name, change in STEPS:
        emails = change.get("email_steps", data["email_steps"])
        data = _merge(data, {**change, "email_steps": emails or shipped["email_steps"]})
        deciders.append(EngineDecider(policy_from_dict(data), label=name))
    run = run_world(load_world(), [*deciders, baselines()[0]], n, seed)
    fixed = run.summaries[-1]
    print(
        f"fixed schedule: {fixed.amount_pct:.2f} % of the failed amount, "
        f"{fixed.retries_per_case:.2f} retries per case ({n} cases, seed {seed})"
    )
    for s in run.summaries[:-1]:
        print(
            f"{s.name:<24} {s.amount_pct:6.2f} %  x{s.recovered_usd / fixed.recovered_usd:.3f}  "
            f"retries {s.retries_per_case:.2f}  x{s.retries_per_case / fixed.retries_per_case:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ablation", action="store_true")
    args = parser.parse_args()
    if args.ablation:
        ablation(args.cases, args.seed)
        return
    world = load_world()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    cases = draw_cases(world, args.cases, args.seed)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print(f"{'draw cases':<24} wall {wall:6.2f} s  cpu {cpu:6.2f} s")
    deciders: list[Decider] = [EngineDecider(load_policy(SHIPPED_DEFAULT)), *baselines()]
    for decider in deciders:
        w0, c0 = time.perf_counter(), time.process_time()
        summary = Summary(decider.name)
        for case in cases:
            summary.add(run_case(world, case, decider))
        w, c = time.perf_counter() - w0, time.process_time() - c0
        wall, cpu = wall + w, cpu + c
        print(
            f"{decider.name:<24} wall {w:6.2f} s  cpu {c:6.2f} s  "
            f"({summary.amount_pct:.2f} % of the failed amount)"
        )
    print(f"{'total':<24} wall {wall:6.2f} s  cpu {cpu:6.2f} s  ({args.cases} cases x 5 policies)")


if __name__ == "__main__":
    main()
