"""Hand-built simulated cases: a case whose every draw is chosen by the test."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from dunning.backtest.cases import ATTEMPT_DRAWS, EMAIL_DRAWS, Codes, SimCase
from dunning.backtest.world import State

MONDAY = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # 10:00 in New York


def hand_case(
    codes: Codes,
    *,
    state: State = State.DEAD,
    brand: str = "visa",
    at: datetime = MONDAY,
    approve: float = 1.0,
    **fields: object,
) -> SimCase:
    """A case that never recovers on its own and whose customer never acts.

    ``approve``: every attempt draw (1.0 never approves, 0.0 always does once the
    obstacle is gone).
    """
    case = SimCase(
        index=0,
        failed_at=at,
        amount=2900,
        currency="usd",
        usd=29.0,
        brand=brand,
        time_zone="America/New_York",
        code=codes.decline_code or "generic_decline",
        state=state,
        codes=codes,
        clear_at=None,
        funded=(),
        updater_at=None,
        email_draws=(1.0,) * EMAIL_DRAWS,
        email_delays=(1 / 24,) * EMAIL_DRAWS,
        action_draw=1.0,
        action_delay=1 / 24,
        attempt_draws=(approve,) * ATTEMPT_DRAWS,
        seed="hand",
    )
    return replace(case, **fields)  # type: ignore[arg-type]
