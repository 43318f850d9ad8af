"""The simulated world of failed renewals: a TOML file that validates into :class:`World`.

Why data: the world is the backtest's only assumption about customers, issuers and
networks. Every group of parameters carries ``source`` (a public source, or the word
"assumption"), so a reader can tell measured figures from guesses, and a sensitivity
world (``base = "default.toml"`` plus the keys it moves) shows which guesses matter.
docs/backtest.md lists every parameter with its source.
"""

from __future__ import annotations

import tomllib
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config" / "backtest"
DEFAULT_WORLD = CONFIG_DIR / "default.toml"

Share = Annotated[float, Field(ge=0, le=1)]
Positive = Annotated[float, Field(gt=0)]


class State(StrEnum):
    """What really stands behind a decline; the policy sees only the codes."""

    NSF = "nsf"  # not enough money until a payday or another inflow
    HOLD = "hold"  # an issuer risk or velocity hold that clears after hours or days
    PROCESSING = "processing"  # an outage or processing error that clears within hours
    DEAD = "dead"  # closed, lost, stolen, blocked for good: only a new card helps
    EXPIRED = "expired"  # stale expiry: the card updater or the customer fixes it
    WRONG_DATA = "wrong_data"  # wrong number or CVC: only the customer fixes it
    AUTH = "auth"  # the issuer wants the cardholder present (3DS): only the customer


class WorldError(ValueError):
    """A world file that does not parse or validate."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Sourced(_Model):
    source: str = Field(min_length=3, description="public source, or 'assumption'")


def _shares_sum_to_one(shares: dict[str, float], what: str) -> dict[str, float]:
    total = sum(shares.values())
    if not shares or abs(total - 1) > 1e-6:
        raise ValueError(f"{what} shares must sum to 1, got {total:.6f}")
    if any(v < 0 for v in shares.values()):
        raise ValueError(f"{what} shares must not be negative")
    return shares


class Population(_Sourced):
    """When failures happen and what they cost."""

    start: date
    span_days: int = Field(ge=1, le=3650, description="failures spread evenly over these days")
    yearly_share: Share = Field(description="share of yearly plans")
    monthly_amount_median: int = Field(gt=0, description="minor units")
    monthly_amount_sigma: float = Field(ge=0, le=3, description="lognormal sigma")
    yearly_months: Positive = Field(description="yearly price in months of the monthly price")
    amounts: tuple[int, ...] = Field(
        default=(),
        description="empirical amounts (minor units); when set they replace the "
        "lognormal draw (a world estimated from the ledger)",
    )


class Currencies(_Sourced):
    shares: dict[str, float]
    usd_rates: dict[str, Positive] = Field(description="value of one unit in USD, fixed")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _shares_sum_to_one(self.shares, "currency")
        missing = set(self.shares) - set(self.usd_rates)
        if missing:
            raise ValueError(f"usd_rates lacks {sorted(missing)}")
        return self


class Brands(_Sourced):
    shares: dict[str, float]

    @field_validator("shares")
    @classmethod
    def _sum(cls, v: dict[str, float]) -> dict[str, float]:
        return _shares_sum_to_one(v, "brand")


class TimeZones(_Sourced):
    shares: dict[str, float]

    @field_validator("shares")
    @classmethod
    def _sum(cls, v: dict[str, float]) -> dict[str, float]:
        return _shares_sum_to_one(v, "time zone")


class DeclineCode(_Model):
    """One first-decline code as Stripe reports it, and the states that produce it."""

    code: str = Field(min_length=1, description="Stripe decline_code")
    network_code: str | None = Field(default=None, description="ISO 8583 network_decline_code")
    share: Share
    states: dict[State, float]

    @field_validator("states")
    @classmethod
    def _sum(cls, v: dict[State, float]) -> dict[State, float]:
        _shares_sum_to_one({str(k): x for k, x in v.items()}, "state")
        return v


class Declines(_Sourced):
    codes: tuple[DeclineCode, ...]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _shares_sum_to_one({c.code: c.share for c in self.codes}, "decline code")
        names = [c.code for c in self.codes]
        if len(set(names)) != len(names):
            raise ValueError("decline codes must be unique")
        return self


class Advice(_Sourced):
    """Codes that come with a decline besides the decline code."""

    stripe_advice_share: Share = Field(description="declines that carry outcome.advice_code")
    mac_share: dict[State, Share] = Field(description="Mastercard declines with a MAC, by state")
    nsf_macs: dict[str, float] = Field(description="which MAC an insufficient-funds decline has")

    @field_validator("nsf_macs")
    @classmethod
    def _sum(cls, v: dict[str, float]) -> dict[str, float]:
        return _shares_sum_to_one(v, "nsf MAC")


class PayCycles(_Sourced):
    """How customers are paid: funds for an insufficient-funds decline land on paydays."""

    weekly: Share
    biweekly: Share
    semimonthly: Share
    monthly: Share
    semimonthly_1_15: Share = Field(description="of semimonthly: 1st and 15th (else 15th/last)")
    monthly_last_business_day: Share = Field(description="of monthly: last business day (else 1st)")
    deposit_hour: int = Field(ge=0, le=23, description="local hour the deposit is available")

    @model_validator(mode="after")
    def _sum(self) -> Self:
        _shares_sum_to_one(
            {"w": self.weekly, "b": self.biweekly, "s": self.semimonthly, "m": self.monthly},
            "pay cycle",
        )
        return self


class Money(_Sourced):
    """Whether a payday covers the charge, and how fast the money goes."""

    chronic_share: Share = Field(description="customers short of money most paydays")
    cover_chronic: Share = Field(description="chance a payday covers the charge (chronic)")
    cover_normal: Share = Field(description="chance a payday covers the charge (others)")
    funded_days_mean: Positive = Field(description="days the money lasts after a payday")
    other_inflows_per_30_days: float = Field(ge=0, description="transfers, refunds, ...")
    inflow_days_mean: Positive


class Issuer(_Sourced):
    """How the issuer answers a retry once the obstacle behind the decline is gone."""

    hold_median_hours: Positive
    hold_sigma: float = Field(ge=0, le=3)
    processing_median_hours: Positive
    processing_sigma: float = Field(ge=0, le=3)
    approve_when_clear: Share
    night_factor: Share = Field(description="approval multiplier for 00:00-06:00 local")
    weekend_factor: Share = Field(description="approval multiplier on Saturday and Sunday")
    new_card_approve: Share = Field(description="approval of a replacement card")


class CardUpdater(_Sourced):
    """The networks' account updater refreshing a stale or replaced card."""

    expired_share: Share = Field(description="expired cards the updater refreshes")
    dead_share: Share = Field(description="dead cards replaced by a reissued card")
    median_days: Positive = Field(description="days after the failure the update arrives")


class Customers(_Sourced):
    """What customers do after a dunning email."""

    update_first_email: Share = Field(description="chance the first email gets a new card")
    update_decay: Share = Field(description="each later email: previous chance times this")
    action_required_update: Share = Field(description="the 3DS 'action required' email")
    delay_median_hours: Positive = Field(description="time from email to action")
    cancel_per_email: Share = Field(description="chance an email makes the customer cancel")


class World(_Model):
    """Everything the simulator draws from."""

    name: str = Field(min_length=1, max_length=64)
    description: str = ""
    population: Population
    currencies: Currencies
    brands: Brands
    time_zones: TimeZones
    declines: Declines
    advice: Advice
    pay_cycles: PayCycles
    money: Money
    issuer: Issuer
    card_updater: CardUpdater
    customers: Customers


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def world_dict(path: Path) -> dict[str, Any]:
    """The raw mapping of a world file, with its ``base`` file merged underneath."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise WorldError(f"cannot read world {path}: {exc}") from exc
    base = data.pop("base", None)
    if base is None:
        return data
    return _merge(world_dict(path.parent / str(base)), data)


def world_from_dict(data: dict[str, Any], *, source: str = "<dict>") -> World:
    """Validate a world mapping."""
    try:
        return World.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise WorldError(f"invalid world {source}: {problems}") from exc


def load_world(path: str | Path = DEFAULT_WORLD) -> World:
    """Read and validate a world file (``base`` chains are followed)."""
    file = Path(path)
    return world_from_dict(world_dict(file), source=str(file))


def sweep_worlds(directory: Path = CONFIG_DIR) -> list[World]:
    """The default world first, then every sensitivity world in the folder, by file name."""
    files = sorted(directory.glob("*.toml"), key=lambda p: (p.name != "default.toml", p.name))
    return [load_world(f) for f in files]
