"""What the policy pages compute: the preview of a made-up failure (retries, waits,
the end and the emails on one time line) and the backtest against the active policy.

Both call the functions the API and the CLI call (``policy.preview_request``,
``policy.schedule_view``, ``backtest.service``); this module only reads the form and
shapes the answer for a page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from markupsafe import Markup

from dunning.backtest import service as backtests
from dunning.backtest.chart import svg
from dunning.backtest.deciders import FIXED_BASELINE
from dunning.backtest.report import ratios
from dunning.console.schedule_chart import schedule_svg
from dunning.formatting import minor_unit_exponent
from dunning.policy import preview_request
from dunning.policy.errors import InvalidRequest
from dunning.policy.models import Policy
from dunning.policy.schedule_view import Row, timeline
from dunning.settings import Settings
from dunning.timezones import parse_zone

DECLINE_CODES = (
    ("insufficient_funds", "insufficient funds"),
    ("do_not_honor", "do not honor"),
    ("generic_decline", "generic decline"),
    ("processing_error", "processing error"),
    ("try_again_later", "try again later"),
    ("expired_card", "expired card"),
    ("stolen_card", "stolen card"),
    ("authentication_required", "authentication required"),
)
BRANDS = ("visa", "mastercard", "amex", "discover")
BACKTEST_CASES = 2000  # seconds of CPU, like the API's default order of magnitude


@dataclass(frozen=True)
class PreviewForm:
    """A made-up first failure, as typed (strings kept for the form)."""

    decline_code: str = "insufficient_funds"
    card_brand: str = "visa"
    time_zone: str = "America/New_York"
    amount: str = "49.00"
    currency: str = "usd"
    failed_at: str = ""  # ISO; empty: now
    backup_cards: str = "0"  # other cards on file, which a policy's cascade may use


@dataclass
class Preview:
    form: PreviewForm
    rows: list[Row] = field(default_factory=list)
    chart: Markup | None = None
    failed_at: datetime | None = None
    decline_class: str | None = None
    problem: str | None = None


def read_form(params: Mapping[str, str]) -> PreviewForm:
    defaults = PreviewForm()
    return PreviewForm(
        **{
            name: params.get(name, getattr(defaults, name)).strip()[:64]
            for name in defaults.__dict__
        }
    )


def _minor(amount: str, currency: str) -> int:
    try:
        value = Decimal(amount.replace(",", ""))
    except InvalidOperation:
        raise InvalidRequest(f"the amount must be a number like 49.00, not {amount!r}") from None
    minor = int(value.scaleb(minor_unit_exponent(currency)))
    if not 0 < minor < 10**12:
        raise InvalidRequest("the amount must be positive")
    return minor


def _failed_at(text: str) -> datetime:
    if not text:
        return datetime.now(UTC).replace(second=0, microsecond=0)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"the failure time must look like 2026-03-03T14:00, not {text!r}"
        ) from None
    if not 1970 <= moment.year < 3000:
        raise InvalidRequest("the failure time must be between 1970 and 2999")
    return preview_request.as_utc(moment)


def preview(policy: Policy, form: PreviewForm, settings: Settings) -> Preview:
    """The schedule ``policy`` would follow after ``form``'s failure, every retry failing
    alike; a form it cannot use comes back with ``problem`` set."""
    out = Preview(form=form)
    try:
        if len(form.currency) != 3 or not form.currency.isalpha():
            raise InvalidRequest(f"the currency must be a code like usd, not {form.currency!r}")
        failed_at = _failed_at(form.failed_at)
        failure = preview_request.Hypothetical(
            decline_code=form.decline_code or None,
            card_brand=form.card_brand or None,
            amount=_minor(form.amount, form.currency),
            currency=form.currency.lower(),
            time_zone=form.time_zone or "UTC",
            failed_at=failed_at,
            backup_cards=int(form.backup_cards) if form.backup_cards.isdigit() else 0,
        )
        decisions = preview_request.preview(policy, failure)
    except InvalidRequest as exc:
        out.problem = str(exc)
        return out
    hours = (settings.email_hours_start, settings.email_hours_end)
    zone = parse_zone(failure.time_zone)
    out.rows = timeline(policy, decisions, failed_at=failed_at, tz=zone, email_hours=hours)
    out.chart = schedule_svg(out.rows, failed_at, policy.limits.max_days)
    out.failed_at = failed_at
    out.decline_class = decisions[0].decline_class.value if decisions else None
    return out


@dataclass(frozen=True)
class BacktestRow:
    name: str
    subject: bool
    amount_pct: float
    cases_pct: float
    retries_per_case: float
    median_days: float | None
    money_x_fixed: float | None
    retries_x_fixed: float | None
    violations: int


@dataclass(frozen=True)
class Backtest:
    world: str
    cases: int
    seconds: float
    rows: list[BacktestRow]
    goal: dict[str, Any]
    chart: Markup


def backtest(subject: Policy, active: Policy, cases: int = BACKTEST_CASES) -> Backtest:
    """``subject`` against the active policy and the baselines, on the same cases."""
    result = backtests.backtest(subject, [active], backtests.Options(cases=cases, seed=1))
    run = result.runs[0]
    base = run.summary(FIXED_BASELINE)
    rows = []
    for s in run.summaries:
        money, retries = ratios(s, base)
        rows.append(
            BacktestRow(
                name=s.name,
                subject=s.name == result.subject,
                amount_pct=s.amount_pct,
                cases_pct=s.cases_pct,
                retries_per_case=s.retries_per_case,
                median_days=s.median_days,
                money_x_fixed=money,
                retries_x_fixed=retries,
                violations=s.total_violations,
            )
        )
    return Backtest(
        world=run.world.name,
        cases=run.cases,
        seconds=run.seconds,
        rows=rows,
        goal=run.goal(result.subject),
        chart=Markup(svg(result)),
    )
