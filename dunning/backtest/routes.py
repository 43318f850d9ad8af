"""``POST /api/policies/backtest`` (role ``ops``): the ``dunning backtest`` command over HTTP.

Why ops only: a run costs seconds of CPU per request and can read the whole ledger
(``from_ledger_since``). It changes nothing, so it is not audited.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from dunning.admin.auth import OpsActor
from dunning.backtest import service
from dunning.backtest.chart import svg
from dunning.backtest.ledger import estimate_world
from dunning.backtest.world import CONFIG_DIR, World, WorldError
from dunning.db import session_scope
from dunning.policy import store
from dunning.policy.models import Policy, PolicyError, parse_policy

router = APIRouter(prefix="/api/policies", tags=["policies"])
MAX_API_CASES = 20_000


class BacktestIn(BaseModel):
    """The options of ``dunning backtest``; policies come as TOML text, not file paths."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(
        default=None, description="policy TOML to test (need not be applied); default: active"
    )
    against: list[Literal["default", "active"]] = Field(
        default=["default"], description="'default' is the shipped file, 'active' the store's"
    )
    against_sources: list[str] = Field(default=[], description="more policies, as TOML text")
    world: str | None = Field(
        default=None, pattern=r"^[a-z0-9_\-]+$", description="a world of config/backtest/"
    )
    sweep: bool = False
    cases: int = Field(default=5000, ge=1, le=MAX_API_CASES)
    seed: int = 1
    from_ledger_since: date | None = None
    chart: bool = Field(default=False, description="include the SVG chart as chart_svg")


def _active() -> Policy:
    with session_scope() as session:
        return store.active_policy(session)[1]


def _ledger(since: date, base: World) -> World:
    with session_scope() as session:
        return estimate_world(session, since, base)


@router.post("/backtest")
def backtest(body: BacktestIn, actor: OpsActor) -> dict[str, Any]:
    """Simulate failed renewals under a policy, the policies it is compared with and the
    baseline schedules (the same cases for all); figures as ``dunning backtest --json``."""
    world = None
    if body.world is not None:
        world = CONFIG_DIR / f"{body.world}.toml"
        if not world.is_file():
            raise HTTPException(404, f"no world {body.world!r} in config/backtest")
    options = service.Options(
        cases=body.cases,
        seed=body.seed,
        world=world,
        sweep=body.sweep,
        from_ledger_since=body.from_ledger_since,
    )
    try:
        subject = parse_policy(body.source, source="source") if body.source else _active()
        against = [service.resolve(name, active=_active) for name in body.against]
        against += [parse_policy(text, source="against_sources") for text in body.against_sources]
        result = service.backtest(subject, against, options, ledger=_ledger)
    except PolicyError as exc:
        detail = {"message": "invalid retry policy", "problems": exc.problems}
        raise HTTPException(422, detail) from exc
    except (WorldError, ValueError) as exc:
        raise HTTPException(422, str(exc)) from exc
    out = result.as_dict()
    if body.chart:
        out["chart_svg"] = svg(result)
    return out
