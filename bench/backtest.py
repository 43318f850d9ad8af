"""How long the backtest takes: N cases x the shipped default policy and the 4 baselines.

    .venv/bin/python bench/backtest.py [--cases 20000] [--seed 1]

Prints wall and CPU time (one process, one core) for drawing the cases and for each
policy. The issue's target: 20,000 cases x 5 policies in under 30 s on one core.
"""

from __future__ import annotations

import argparse
import time

from dunning.backtest.cases import draw_cases
from dunning.backtest.deciders import EngineDecider, baselines
from dunning.backtest.report import Summary
from dunning.backtest.service import SHIPPED_DEFAULT
from dunning.backtest.simulate import run_case
from dunning.backtest.world import load_world
from dunning.policy.models import load_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    world = load_world()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    cases = draw_cases(world, args.cases, args.seed)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print(f"{'draw cases':<24} wall {wall:6.2f} s  cpu {cpu:6.2f} s")
    deciders = [EngineDecider(load_policy(SHIPPED_DEFAULT)), *baselines()]
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
