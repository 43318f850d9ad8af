"""``dunning backtest``: how much a policy file recovers, before it goes live.

Runs the policy, the policies it is compared with and the baseline schedules on the
same simulated cases; no database unless ``--against active`` or ``--from-ledger``.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from dunning.backtest.world import World
    from dunning.policy.models import Policy


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _since(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date like 2026-06-01") from None


def _active_policy() -> Policy:
    """The policy the store serves new cases (reads the database)."""
    from dunning.db import session_scope
    from dunning.policy import store
    from dunning.startup import setup

    setup()
    with session_scope() as session:
        return store.active_policy(session)[1]


def _ledger_world(since: date, base: World) -> World:
    from dunning.backtest.ledger import estimate_world
    from dunning.db import session_scope
    from dunning.startup import setup

    setup()
    with session_scope() as session:
        return estimate_world(session, since, base)


def backtest(
    policy: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="policy TOML (need not be applied)")
    ],
    against: Annotated[
        list[str] | None,
        typer.Option(help="default (shipped), active (the store's) or a policy file; repeatable"),
    ] = None,
    world: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="world TOML")
    ] = None,
    sweep: Annotated[bool, typer.Option(help="every world in config/backtest/")] = False,
    cases: Annotated[int, typer.Option(min=1, help="simulated cases per world")] = 5000,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same cases)")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    chart: Annotated[Path | None, typer.Option(help="write an SVG chart here")] = None,
    from_ledger: Annotated[
        bool, typer.Option(help="estimate the world from the ledger (needs --since)")
    ] = False,
    since: Annotated[str | None, typer.Option(help="first day of the ledger, 2026-06-01")] = None,
    classes: Annotated[bool, typer.Option(help="also print the table by decline class")] = True,
) -> None:
    """Simulate failed renewals under POLICY, the policies --against and the baselines."""
    from dunning.backtest import service
    from dunning.backtest.chart import svg
    from dunning.backtest.world import WorldError
    from dunning.policy.models import PolicyError

    when = _since(since)
    if from_ledger and when is None:
        raise _fail("--from-ledger needs --since DATE")
    options = service.Options(
        cases=cases,
        seed=seed,
        world=world,
        sweep=sweep,
        from_ledger_since=when if from_ledger else None,
    )
    started = datetime.now()
    try:
        subject = service.resolve(str(policy))
        others = [service.resolve(a, active=_active_policy) for a in (against or ["default"])]
        result = service.backtest(subject, others, options, ledger=_ledger_world)
    except (PolicyError, WorldError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    if chart is not None:
        chart.write_text(svg(result), encoding="utf-8")
        result.notes.append(f"chart written to {chart}")
    seconds = (datetime.now() - started).total_seconds()
    result.notes.append(f"{seconds:.1f} s in all")
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
    else:
        typer.echo(result.text(classes=classes))
