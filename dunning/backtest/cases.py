"""Simulated failed renewals, drawn once per world and seed and shared by every policy.

Why draw everything up front: common random numbers. Each case carries its hidden state
and every random number the world will ever need for it (when a hold clears, which
paydays cover the charge, how the customer answers the n-th email, the draw behind the
k-th attempt), so two policies differ only by what they do, never by luck.
"""

from __future__ import annotations

import calendar
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from dunning.backtest.world import DeclineCode, State, World

HORIZON = timedelta(days=120)  # paydays, inflows and updates are drawn this far ahead
ATTEMPT_DRAWS = 64
EMAIL_DRAWS = 16
FRIDAY = 4
_DEAD_ADVICE = "do_not_try_again"
ADVICE: Mapping[State, str | None] = {
    State.NSF: "try_again_later",
    State.HOLD: "try_again_later",
    State.PROCESSING: "try_again_later",
    State.DEAD: _DEAD_ADVICE,
    State.EXPIRED: "confirm_card_data",
    State.WRONG_DATA: "confirm_card_data",
    State.AUTH: None,
}
_STATE_MAC = {State.HOLD: "02", State.DEAD: "03", State.EXPIRED: "01"}
_REVOKED = {"revocation_of_authorization", "revocation_of_all_authorizations", "stop_payment_order"}
MAC_WAIT: Mapping[str, timedelta] = {
    "24": timedelta(hours=1),
    "25": timedelta(hours=24),
    "26": timedelta(days=2),
    "27": timedelta(days=4),
    "28": timedelta(days=6),
    "29": timedelta(days=8),
    "30": timedelta(days=10),
}


@dataclass(frozen=True, slots=True)
class Codes:
    """The codes a decline carries, as Stripe reports them."""

    decline_code: str | None
    network_decline_code: str | None = None
    advice_code: str | None = None
    network_advice_code: str | None = None


@dataclass(frozen=True, slots=True)
class SimCase:
    """One failed renewal and everything the world will draw for it."""

    index: int
    failed_at: datetime
    amount: int
    currency: str
    usd: float  # the amount in US dollars, for adding cases up
    brand: str
    time_zone: str
    code: str  # the world's decline code (the row of the decline table it came from)
    state: State
    codes: Codes
    clear_at: datetime | None  # hold / processing: when the obstacle is gone
    funded: tuple[tuple[datetime, datetime], ...]  # insufficient funds: money on hand
    updater_at: datetime | None  # the card updater refreshes the card then
    email_draws: tuple[float, ...]
    email_delays: tuple[float, ...]  # days from the email to the customer's answer
    action_draw: float
    action_delay: float  # days
    attempt_draws: tuple[float, ...]
    seed: str

    def draw(self, k: int) -> float:
        """The uniform draw behind the case's k-th charge attempt (same for all policies)."""
        if k < len(self.attempt_draws):
            return self.attempt_draws[k]
        return random.Random(f"{self.seed}:attempt:{k}").random()

    def is_funded(self, t: datetime) -> bool:
        """Whether an insufficient-funds customer has the money at ``t``."""
        return any(a <= t < b for a, b in self.funded)


def _pick(rng: random.Random, shares: Mapping[str, float]) -> str:
    r = rng.random()
    acc = 0.0
    last = ""
    for key, share in shares.items():
        acc += share
        last = key
        if r < acc:
            return key
    return last


@dataclass(frozen=True)
class _Tables:
    """Lookups derived once per world (drawing 20,000 cases must stay cheap)."""

    codes: Mapping[str, DeclineCode]
    code_shares: Mapping[str, float]
    states: Mapping[str, Mapping[str, float]]
    zones: Mapping[str, ZoneInfo]

    @classmethod
    def of(cls, world: World) -> _Tables:
        rows = world.declines.codes
        return cls(
            codes={c.code: c for c in rows},
            code_shares={c.code: c.share for c in rows},
            states={c.code: {str(k): v for k, v in c.states.items()} for c in rows},
            zones={name: ZoneInfo(name) for name in world.time_zones.shares},
        )


def _lognormal_hours(rng: random.Random, median: float, sigma: float) -> timedelta:
    return timedelta(hours=median * math.exp(sigma * rng.gauss(0, 1)))


def _exp_days(rng: random.Random, median: float) -> timedelta:
    return timedelta(days=rng.expovariate(math.log(2) / median))


@lru_cache(maxsize=512)
def _month_days(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _before_weekend(d: date) -> date:
    """A payday on Saturday or Sunday is paid on the Friday before."""
    return d - timedelta(days=max(0, d.weekday() - FRIDAY))


def _last_business_day(year: int, month: int) -> date:
    return _before_weekend(date(year, month, _month_days(year, month)))


def payday_dates(cycle: str, variant: int, start: date, end: date) -> list[date]:
    """Paydays of a pay cycle between two local dates (weekend paydays moved to Friday).

    ``variant``: biweekly phase (0/1); semimonthly 1 = 1st and 15th, else 15th and last
    day; monthly 1 = last business day, else the 1st.
    """
    days: list[date] = []
    if cycle in ("weekly", "biweekly"):
        d = start + timedelta(days=(FRIDAY - start.weekday()) % 7)
        step = 7 if cycle == "weekly" else 14
        if cycle == "biweekly" and (d.toordinal() // 7 + variant) % 2:
            d += timedelta(days=7)
        while d <= end:
            days.append(d)
            d += timedelta(days=step)
        return days
    year, month = start.year, start.month
    while date(year, month, 1) <= end:
        last = _month_days(year, month)
        if cycle == "semimonthly":
            picks = (
                [date(year, month, 1), date(year, month, 15)]
                if variant
                else [
                    date(year, month, 15),
                    date(year, month, last),
                ]
            )
            days += [_before_weekend(p) for p in picks]
        elif variant:
            days.append(_last_business_day(year, month))
        else:
            days.append(_before_weekend(date(year, month, 1)))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return sorted(d for d in set(days) if start <= d <= end)


def _funded(
    world: World, rng: random.Random, failed_at: datetime, tz: ZoneInfo
) -> list[tuple[datetime, datetime]]:
    cycles = world.pay_cycles
    money = world.money
    cycle = _pick(
        rng,
        {
            "weekly": cycles.weekly,
            "biweekly": cycles.biweekly,
            "semimonthly": cycles.semimonthly,
            "monthly": cycles.monthly,
        },
    )
    share = cycles.semimonthly_1_15 if cycle == "semimonthly" else cycles.monthly_last_business_day
    variant = rng.randrange(2) if cycle == "biweekly" else int(rng.random() < share)
    cover = money.cover_chronic if rng.random() < money.chronic_share else money.cover_normal
    local = failed_at.astimezone(tz)
    intervals: list[tuple[datetime, datetime]] = []
    for d in payday_dates(cycle, variant, local.date(), (local + HORIZON).date()):
        landed = datetime.combine(d, time(cycles.deposit_hour), tz).astimezone(UTC)
        lasts = timedelta(days=rng.expovariate(1 / money.funded_days_mean))
        if landed > failed_at and rng.random() < cover:
            intervals.append((landed, landed + lasts))
    rate = money.other_inflows_per_30_days / 30
    t = failed_at
    while rate > 0:
        t += timedelta(days=rng.expovariate(rate))
        if t > failed_at + HORIZON:
            break
        intervals.append((t, t + timedelta(days=rng.expovariate(1 / money.inflow_days_mean))))
    return sorted(intervals)


def _codes(
    world: World, rng: random.Random, row_code: str, network: str | None, state: State, brand: str
) -> Codes:
    advice = ADVICE[state] if rng.random() < world.advice.stripe_advice_share else None
    mac: str | None = None
    if brand == "mastercard":
        if row_code in _REVOKED:
            mac = "21"
        elif rng.random() < world.advice.mac_share.get(state, 0.0):
            mac = _pick(rng, world.advice.nsf_macs) if state is State.NSF else _STATE_MAC.get(state)
    return Codes(row_code, network, advice, mac)


def draw_case(world: World, seed: int, index: int, tables: _Tables | None = None) -> SimCase:
    """Case ``index`` of the world for ``seed``: the same case whatever else is drawn."""
    tables = tables or _Tables.of(world)
    key = f"{seed}:{index}"  # not the world name: sensitivity worlds share the draws
    rng = random.Random(key)
    pop = world.population
    failed_at = datetime.combine(pop.start, time(0), UTC) + timedelta(
        seconds=rng.randrange(pop.span_days * 86400)
    )
    currency = _pick(rng, world.currencies.shares)
    if pop.amounts:
        amount = pop.amounts[rng.randrange(len(pop.amounts))]
    else:
        monthly = pop.monthly_amount_median * math.exp(pop.monthly_amount_sigma * rng.gauss(0, 1))
        yearly = rng.random() < pop.yearly_share
        amount = max(100, round(monthly * (pop.yearly_months if yearly else 1) / 100) * 100 - 1)
    brand = _pick(rng, world.brands.shares)
    time_zone = _pick(rng, world.time_zones.shares)
    tz = tables.zones[time_zone]
    row = tables.codes[_pick(rng, tables.code_shares)]
    state = State(_pick(rng, tables.states[row.code]))
    codes = _codes(world, rng, row.code, row.network_code, state, brand)
    issuer = world.issuer
    clear_at = None
    if state is State.HOLD:
        clear_at = failed_at + _lognormal_hours(rng, issuer.hold_median_hours, issuer.hold_sigma)
    elif state is State.PROCESSING:
        clear_at = failed_at + _lognormal_hours(
            rng, issuer.processing_median_hours, issuer.processing_sigma
        )
    funded = _funded(world, rng, failed_at, tz) if state is State.NSF else []
    updater = world.card_updater
    share = {State.EXPIRED: updater.expired_share, State.DEAD: updater.dead_share}.get(state, 0.0)
    updater_at = failed_at + _exp_days(rng, updater.median_days) if rng.random() < share else None
    rate = math.log(2) / (world.customers.delay_median_hours / 24)  # answers per day
    uniform = rng.random
    return SimCase(
        index=index,
        failed_at=failed_at,
        amount=amount,
        currency=currency,
        usd=amount / 100 * world.currencies.usd_rates[currency],
        brand=brand,
        time_zone=time_zone,
        code=row.code,
        state=state,
        codes=codes,
        clear_at=clear_at,
        funded=tuple(funded),
        updater_at=updater_at,
        email_draws=tuple([uniform() for _ in range(EMAIL_DRAWS)]),
        email_delays=tuple([rng.expovariate(rate) for _ in range(EMAIL_DRAWS)]),
        action_draw=uniform(),
        action_delay=rng.expovariate(rate),
        attempt_draws=tuple([uniform() for _ in range(ATTEMPT_DRAWS)]),
        seed=key,
    )


def draw_cases(world: World, n: int, seed: int) -> list[SimCase]:
    """``n`` cases; case i is the same for any ``n`` > i (so runs of different size nest)."""
    tables = _Tables.of(world)
    return [draw_case(world, seed, i, tables) for i in range(n)]


def class_counts(cases: Sequence[SimCase]) -> dict[str, int]:
    """How many cases per world decline code (for the report's header)."""
    counts: dict[str, int] = {}
    for case in cases:
        counts[case.code] = counts.get(case.code, 0) + 1
    return counts
