"""The simulator: deterministic for a seed, the same cases for every policy, and the
engine driven as the planner drives it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dunning.backtest.cases import Codes, SimCase, draw_cases
from dunning.backtest.deciders import Decider, EngineDecider, baselines
from dunning.backtest.runner import run, run_world
from dunning.backtest.service import SHIPPED_DEFAULT
from dunning.backtest.simulate import run_case
from dunning.backtest.world import load_world
from dunning.policy.models import load_policy
from dunning.policy.preview import simulate
from dunning.policy.records import Attempt, Decision, DecisionKind

from .factories import hand_case

DEFAULT = load_policy(SHIPPED_DEFAULT)


def _without_timing(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "worlds": [{**w, "seconds": None} for w in data["worlds"]]}


def test_same_seed_same_figures_and_another_seed_others() -> None:
    world = load_world()
    deciders: list[Decider] = [EngineDecider(DEFAULT), *baselines()]
    first = run(deciders, [world], n=300, seed=7, subject=deciders[0].name).as_dict()
    again = run(deciders, [world], n=300, seed=7, subject=deciders[0].name).as_dict()
    other = run(deciders, [world], n=300, seed=8, subject=deciders[0].name).as_dict()
    assert _without_timing(first) == _without_timing(again)
    assert _without_timing(first)["worlds"] != _without_timing(other)["worlds"]


def test_cases_are_drawn_the_same_whatever_the_count() -> None:
    world = load_world()
    assert draw_cases(world, 50, 3) == draw_cases(world, 80, 3)[:50]


@dataclass
class Spy:
    """A decider that records the cases it is shown, and delegates."""

    inner: EngineDecider
    label: str
    seen: dict[int, tuple[datetime, Codes, float, str]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.label

    @property
    def email_days(self) -> Sequence[float]:
        return self.inner.email_days

    def decide(
        self,
        case: SimCase,
        history: Sequence[Attempt],
        now: datetime,
        card_updated_at: datetime | None,
    ) -> Decision:
        self.seen.setdefault(case.index, (case.failed_at, case.codes, case.usd, case.state))
        return self.inner.decide(case, history, now, card_updated_at)


def test_two_policies_see_the_same_cases_and_draws() -> None:
    gentle = load_policy(SHIPPED_DEFAULT).model_copy(update={"name": "gentle"})
    a = Spy(EngineDecider(DEFAULT), "a")
    b = Spy(EngineDecider(gentle), "b")
    run_world(load_world(), [a, b], 200, 11)
    assert len(a.seen) == 200 and a.seen == b.seen


def test_the_engine_sees_what_the_preview_sees() -> None:
    """A case that never recovers gets exactly the preview's schedule."""
    case = hand_case(Codes("do_not_honor", "05"))
    result = run_case(load_world(), case, EngineDecider(DEFAULT))
    first = Attempt(
        at=case.failed_at, amount=case.amount, currency=case.currency,
        decline_code="do_not_honor", network_decline_code="05", card_brand=case.brand,
        card_fingerprint="fp0",
    )  # fmt: skip
    preview = simulate(DEFAULT, first, time_zone=case.time_zone, card_brand=case.brand)
    retries = [d.at for d in preview if d.kind is DecisionKind.RETRY]
    assert [a.at for a in result.attempts[1:]] == retries
    assert result.ended == "gave_up"


def test_a_recovery_is_credited_to_who_paid() -> None:
    world = load_world()
    customer = hand_case(Codes("expired_card", "54"), email_draws=(0.0,) * 16, approve=0.0)
    done = run_case(world, customer, EngineDecider(DEFAULT))
    assert done.recovered and done.by == "customer" and done.retries == 0
    updated = hand_case(
        Codes("expired_card", "54"), approve=0.0, updater_at=customer.failed_at.replace(day=5)
    )
    done = run_case(world, updated, EngineDecider(DEFAULT))
    assert done.recovered and done.by == "card_updater" and done.retries == 1
