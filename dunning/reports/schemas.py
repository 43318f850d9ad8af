"""The report tables: one pydantic model per table row, shared by the API (OpenAPI
schemas), the CSV export, the dashboard and the CLI.

Amounts are integers in the currency's minor unit (cents; yen for JPY), always next to
their ``currency``: amounts in different currencies are never added together. Rates are
fractions (0.25 = 25 %), ``None`` when their denominator is zero.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

Row = TypeVar("Row", bound=BaseModel)


class Filters(BaseModel):
    """What a report was asked for: the period is ``[start, end)`` in UTC."""

    start: date = Field(description="first day of the period (inclusive, UTC)")
    end: date = Field(description="day after the period (exclusive, UTC)")
    currency: str | None = Field(None, description="only this currency (lower case ISO 4217)")
    segment: str | None = Field(None, description="only customers of this segment")


class Table(BaseModel, Generic[Row]):
    """A report table: the filters it was computed for and its rows."""

    filters: Filters
    generated_at: datetime
    rows: list[Row]


class HeadlineRow(BaseModel):
    """The headline figures of one currency for the period."""

    currency: str
    renewals_attempted: int = Field(
        description="renewal invoices first charged in the period (failed + paid first time)"
    )
    renewals_failed: int = Field(description="renewal invoices whose first charge failed")
    failure_rate: float | None = Field(description="renewals_failed / renewals_attempted")
    cases_opened: int = Field(description="dunning cases opened in the period (the cohort)")
    cases_closed: int = Field(description="cases of the cohort no longer open")
    cases_open: int = Field(description="cases of the cohort still open")
    cases_recovered: int = Field(description="cases of the cohort recovered")
    recovery_rate: float | None = Field(description="cases_recovered / cases_closed")
    failed_amount: int = Field(description="amount of every case of the cohort")
    closed_failed_amount: int = Field(description="amount of the closed cases of the cohort")
    recovered_amount: int = Field(description="amount paid on the recovered cases")
    recovery_rate_amount: float | None = Field(
        description="recovered_amount / closed_failed_amount"
    )
    median_hours_to_recovery: float | None
    p90_hours_to_recovery: float | None
    active_subscriptions_at_start: int
    subscriptions_started: int = Field(
        description="subscriptions whose first invoice is in the period"
    )
    churned_subscriptions: int = Field(
        description="subscriptions canceled by the dunning end action in the period"
    )
    involuntary_churn_rate: float | None = Field(
        description="churned_subscriptions / (active_subscriptions_at_start "
        "+ subscriptions_started)"
    )
    churned_mrr: int = Field(description="monthly recurring revenue of the churned subscriptions")


class ChannelRow(BaseModel):
    """Recovered revenue of one channel (``retry``, ``processor``, ``customer``,
    ``card_updater``) in one currency, over the cohort; then ``sms``: the recoveries that
    followed an SMS link, also counted in the channel that charged (never added)."""

    currency: str
    channel: str
    cases: int
    amount: int
    share: float | None = Field(description="amount / all recovered amount of the currency")
    calls: int | None = Field(
        None, description="card_updater only: updater calls about the cohort's cases"
    )
    hits: int | None = Field(None, description="card_updater only: calls that found a changed card")
    sent: int | None = Field(None, description="sms only: SMS sent about the cohort's cases")


class TimeToRecoveryRow(BaseModel):
    """How long recovered cases of the cohort took, from first failure to payment."""

    currency: str
    recovered: int
    median_hours: float | None
    p90_hours: float | None


class RecoveryDayRow(BaseModel):
    """Recovered cases by whole days since the first failure; ``day`` 30 means 30 or more."""

    currency: str
    day: int
    cases: int
    amount: int


class MonthRow(BaseModel):
    """The cohort of one calendar month (UTC) of case openings."""

    month: date
    currency: str
    cases_opened: int
    cases_closed: int
    cases_recovered: int
    recovery_rate: float | None
    failed_amount: int
    recovered_amount: int
    recovery_rate_amount: float | None


class BreakdownRow(BaseModel):
    """The cohort split by one dimension (decline class, card brand, plan, …)."""

    dimension: str
    value: str
    currency: str
    cases_opened: int
    cases_closed: int
    cases_recovered: int
    recovery_rate: float | None
    failed_amount: int
    recovered_amount: int
    recovery_rate_amount: float | None


class ArmStatus(StrEnum):
    """What a policy version of the cohort is to new cases now."""

    ACTIVE = "active"
    SPLIT = "split"  # the B arm
    INACTIVE = "inactive"
    NONE = "none"  # cases opened without a policy


class ArmRow(BaseModel):
    """One policy version (A/B arm) over the cohort, all currencies counted together."""

    policy_id: int | None
    policy: str
    status: ArmStatus = Field(description="active, split (the B arm), inactive, or none")
    cases_opened: int
    n: int = Field(description="closed cases: the sample size of the rate")
    recovered: int
    recovery_rate: float | None
    ci_low: float | None = Field(description="95 % Wilson interval, lower bound")
    ci_high: float | None = Field(description="95 % Wilson interval, upper bound")


class FunnelRow(BaseModel):
    """Dunning emails of one step sent to the cohort, and what followed from them."""

    step: int | None = Field(description="the policy step; none for the final notice")
    template: str
    sent: int
    link_opened: int
    card_updated: int
    paid: int


class ChurnRow(BaseModel):
    """Involuntary churn of one currency in the period."""

    currency: str
    active_at_start: int
    started_in_period: int = Field(description="subscriptions whose first invoice is in the period")
    churned: int
    churn_rate: float | None = Field(description="churned / (active_at_start + started_in_period)")
    mrr_at_start: int
    mrr_live: int = Field(description="MRR of every subscription live in the period")
    churned_mrr: int
    mrr_churn_rate: float | None = Field(description="churned_mrr / mrr_live")


class AtRiskSummaryRow(BaseModel):
    """Renewals in the horizon whose default card expires before the renewal date."""

    currency: str
    subscriptions: int
    amount: int


class AtRiskRow(BaseModel):
    """One renewal at risk."""

    subscription_id: str
    customer_id: str | None
    segment: str | None
    plan: str | None
    renews_at: datetime
    card_brand: str | None
    card_last4: str | None
    card_expires: str = Field(description="YYYY-MM: the card works through this month")
    amount: int
    currency: str
