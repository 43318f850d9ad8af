"""Worlds: validated, sourced, and at least five sensitivity worlds besides the default."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from dunning.backtest.cases import payday_dates
from dunning.backtest.world import (
    CONFIG_DIR,
    World,
    WorldError,
    load_world,
    sweep_worlds,
    world_dict,
    world_from_dict,
)

GROUPS = [name for name, f in World.model_fields.items() if name not in ("name", "description")]


def test_the_sweep_has_the_default_and_at_least_five_others() -> None:
    worlds = sweep_worlds()
    assert worlds[0].name == "default" and len(worlds) >= 6
    assert len({w.name for w in worlds}) == len(worlds)


@pytest.mark.parametrize("world", sweep_worlds(), ids=lambda w: w.name)
def test_every_parameter_group_names_its_source(world: World) -> None:
    for group in GROUPS:
        source = getattr(world, group).source
        assert source.strip(), group


def test_a_sensitivity_world_moves_only_what_it_says() -> None:
    base = world_dict(CONFIG_DIR / "default.toml")
    slow = world_dict(CONFIG_DIR / "slow_holds.toml")
    moved = {k for k in base if base[k] != slow[k]}
    assert moved == {"name", "description", "issuer"}


def test_bad_worlds_are_refused_with_the_key(tmp_path: Path) -> None:
    data = world_dict(CONFIG_DIR / "default.toml")
    data["brands"]["shares"] = {"visa": 0.5}
    with pytest.raises(WorldError, match="brand shares must sum to 1"):
        world_from_dict(data)
    data = world_dict(CONFIG_DIR / "default.toml")
    data["issuer"]["surprise"] = 1
    with pytest.raises(WorldError, match=r"issuer\.surprise"):
        world_from_dict(data)
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [", encoding="utf-8")
    with pytest.raises(WorldError, match="cannot read world"):
        load_world(bad)


def test_paydays_of_each_cycle() -> None:
    march = (date(2026, 3, 1), date(2026, 3, 31))
    fridays = [date(2026, 3, d) for d in (6, 13, 20, 27)]
    assert payday_dates("weekly", 0, *march) == fridays
    assert len(payday_dates("biweekly", 0, *march)) == 2
    assert set(payday_dates("biweekly", 0, *march)) | set(
        payday_dates("biweekly", 1, *march)
    ) == set(fridays)
    # 2026-03-01 is a Sunday (paid Friday 2026-02-27, before the range); 15th Sunday -> 13th
    assert payday_dates("semimonthly", 1, *march) == [date(2026, 3, 13)]
    assert payday_dates("semimonthly", 0, *march) == [date(2026, 3, 13), date(2026, 3, 31)]
    assert payday_dates("monthly", 1, *march) == [date(2026, 3, 31)]  # last business day
    assert payday_dates("monthly", 0, date(2026, 4, 1), date(2026, 4, 30)) == [date(2026, 4, 1)]
