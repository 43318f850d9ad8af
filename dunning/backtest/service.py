"""What the CLI and the API share: which policies run against which, in which worlds.

Why here: ``dunning backtest`` and ``POST /api/policies/backtest`` take the same
options and must give the same figures; both call :func:`backtest`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from dunning.backtest.deciders import Decider, EngineDecider, baselines
from dunning.backtest.runner import Backtest, run
from dunning.backtest.world import CONFIG_DIR, DEFAULT_WORLD, World, load_world, sweep_worlds
from dunning.policy.models import Policy, load_policy

SHIPPED_DEFAULT = Path(__file__).resolve().parents[2] / "config" / "policies" / "default.toml"
MAX_CASES = 100_000

ActivePolicy = Callable[[], Policy]
LedgerWorld = Callable[[date, World], World]


@dataclass(frozen=True)
class Options:
    """One backtest request."""

    cases: int = 5000
    seed: int = 1
    world: Path | None = None
    sweep: bool = False
    from_ledger_since: date | None = None


def resolve(spec: str, *, active: ActivePolicy | None = None) -> Policy:
    """A policy to compare with: ``default`` (the shipped file), ``active`` (the one the
    store serves new cases; needs the database) or a path to a policy TOML."""
    if spec == "default":
        return load_policy(SHIPPED_DEFAULT)
    if spec == "active":
        if active is None:
            raise ValueError("'active' needs the policy store (a database)")
        return active()
    return load_policy(spec)


def deciders(subject: Policy, against: Sequence[Policy]) -> list[Decider]:
    """The subject, each policy it is compared with, then the baselines (unique names)."""
    out: list[Decider] = [EngineDecider(subject)]
    names = {out[0].name}
    for policy in against:
        if policy == subject:
            continue  # the same policy twice says nothing
        decider = EngineDecider(policy)
        name = decider.name
        if name in names:
            decider = EngineDecider(policy, label=f"{name} (against)")
        names.add(decider.name)
        out.append(decider)
    return [*out, *baselines()]


def worlds(options: Options, ledger: LedgerWorld | None = None) -> list[World]:
    """The worlds the options ask for."""
    if options.from_ledger_since is not None:
        if ledger is None:
            raise ValueError("--from-ledger needs the database")
        base = load_world(options.world or DEFAULT_WORLD)
        return [ledger(options.from_ledger_since, base)]
    if options.sweep:
        return sweep_worlds(options.world.parent if options.world else CONFIG_DIR)
    return [load_world(options.world or DEFAULT_WORLD)]


def backtest(
    subject: Policy,
    against: Sequence[Policy],
    options: Options,
    *,
    ledger: LedgerWorld | None = None,
) -> Backtest:
    """Run the subject, the policies it is compared with and the baselines."""
    if not 1 <= options.cases <= MAX_CASES:
        raise ValueError(f"cases must be between 1 and {MAX_CASES}")
    ds = deciders(subject, against)
    return run(ds, worlds(options, ledger), n=options.cases, seed=options.seed, subject=ds[0].name)
