"""How the simulated issuer answers one charge attempt.

Why apart from the cases: the cases hold the draws, this holds the rules that turn a
draw into an answer, so the two can be read (and tested) on their own.
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum
from functools import cache
from zoneinfo import ZoneInfo

from dunning.backtest.cases import MAC_WAIT, Codes, SimCase
from dunning.backtest.world import State, World

REPLACEMENT_DECLINE = Codes("generic_decline")


class Card(IntEnum):
    """Which credentials an attempt uses."""

    ORIGINAL = 0
    UPDATER = 1  # refreshed by the card updater
    CUSTOMER = 2  # a new card the customer entered


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def clock_factor(world: World, at: datetime, time_zone: str) -> float:
    """Approval multiplier for the local time of day and day of week."""
    local = at.astimezone(_zone(time_zone))
    factor = world.issuer.night_factor if local.hour < 6 else 1.0
    if local.weekday() >= 5:
        factor *= world.issuer.weekend_factor
    return factor


def charge(
    world: World,
    case: SimCase,
    at: datetime,
    card: Card,
    k: int,
    last_decline_at: datetime,
) -> Codes | None:
    """``None`` when the k-th attempt of the case is approved, else its decline codes.

    A Mastercard "retry after" advice (MAC 24-30) means the issuer declines anything
    sooner; after the obstacle behind the decline is gone, approval still depends on
    the draw and the local clock.
    """
    u = case.draw(k)
    factor = clock_factor(world, at, case.time_zone)
    issuer = world.issuer
    if card is not Card.ORIGINAL:
        return None if u < issuer.new_card_approve * factor else REPLACEMENT_DECLINE
    wait = MAC_WAIT.get(case.codes.network_advice_code or "")
    if wait is not None and at < last_decline_at + wait:
        return case.codes
    state = case.state
    if state is State.NSF:
        ok = case.is_funded(at)
    elif state in (State.HOLD, State.PROCESSING):
        ok = case.clear_at is not None and at >= case.clear_at
    else:
        ok = False
    return None if ok and u < issuer.approve_when_clear * factor else case.codes
