"""The dashboard's eight charts, drawn as inline SVG from rows of the report tables."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from markupsafe import Markup

from dunning.reports import charts, schemas
from dunning.reports.display import email_step_name, fmt_money_axis
from dunning.reports.metrics.channels import SMS, UPDATER
from dunning.reports.metrics.cohort import MAX_DAY


@dataclass(frozen=True)
class ChartRows:
    """Everything the charts draw: rows of the report tables for one currency."""

    currency: str | None
    trend_start: date
    end: date
    trend: list[schemas.MonthRow]
    by_class: list[schemas.BreakdownRow]
    by_code: list[schemas.BreakdownRow]
    days: list[schemas.RecoveryDayRow]
    arms: list[schemas.ArmRow]
    funnel: list[schemas.FunnelRow]
    channels: list[schemas.ChannelRow]


def _months(start: date, end: date) -> list[date]:
    months: list[date] = []
    m = start
    while m < end:
        months.append(m)
        m = date(m.year + (m.month == 12), m.month % 12 + 1, 1)
    return months


def money_axis(currency: str) -> charts.Format:
    """Axis labels in major units with the currency, shortened ($12.3k, CHF 1.2M)."""
    return lambda value: fmt_money_axis(value, currency)


def funnel_steps(rows: list[schemas.FunnelRow]) -> list[tuple[str, charts.Stages]]:
    """Each email step, by its name, with its four stages."""
    return [
        (
            email_step_name(r.step, r.template),
            [
                ("Sent", r.sent),
                ("Link opened", r.link_opened),
                ("Card updated", r.card_updated),
                ("Paid", r.paid),
            ],
        )
        for r in rows
    ]


CHANNEL_LABELS = {UPDATER: "card updater", SMS: "after SMS link"}


def channel_bars(rows: list[schemas.ChannelRow]) -> tuple[list[str], list[float], list[str]]:
    """The channel chart's bars: label, recovered amount and the note under each (cases;
    the card updater's hits of its calls; the recoveries after an SMS of those sent)."""
    labels, amounts, notes = [], [], []
    for r in rows:
        labels.append(CHANNEL_LABELS.get(r.channel, r.channel))
        amounts.append(float(r.amount))
        if r.channel == UPDATER:
            notes.append(f"{_cases(r.cases)} · {r.hits or 0:,}/{r.calls or 0:,} hits")
        elif r.channel == SMS:
            notes.append(f"{r.cases:,} of {r.sent or 0:,} sent")
        else:
            notes.append(_cases(r.cases))
    return labels, amounts, notes


def _cases(n: int) -> str:
    return f"{n:,} case" if n == 1 else f"{n:,} cases"


def draw_charts(data: ChartRows) -> dict[str, Markup]:
    """Every chart by its element id, in the order the page shows them."""
    cur = f" ({data.currency.upper()})" if data.currency else ""
    months = _months(data.trend_start, data.end)
    by_month = {r.month: r for r in data.trend}
    labels = [m.strftime("%b %y") for m in months]
    rows = [by_month.get(m) for m in months]
    money = money_axis(data.currency or "usd")
    top_codes = data.by_code[:10]
    arms = [charts.Interval(a.policy, a.recovery_rate, a.ci_low, a.ci_high, a.n) for a in data.arms]
    day_counts = {d.day: d.cases for d in data.days}
    channel_labels, channel_amounts, channel_notes = channel_bars(
        [c for c in data.channels if c.currency == data.currency]
    )
    by_class = data.by_class
    return {
        "recovery-by-month": charts.line_chart(
            "recovery-by-month",
            f"Recovery rate by month of failure{cur}",
            labels,
            [
                charts.Series("by count", [r.recovery_rate if r else None for r in rows]),
                charts.Series("by amount", [r.recovery_rate_amount if r else None for r in rows]),
            ],
            charts.percent,
            y_max=1.0,
        ),
        "amounts-by-month": charts.bar_chart(
            "amounts-by-month",
            f"Failed vs recovered amount by month{cur}",
            labels,
            [
                charts.Series("failed", [r.failed_amount if r else 0 for r in rows]),
                charts.Series("recovered", [r.recovered_amount if r else 0 for r in rows]),
            ],
            money,
        ),
        "recovery-by-decline-class": charts.bar_chart(
            "recovery-by-decline-class",
            f"Recovery rate by decline class{cur}",
            [r.value for r in by_class],
            [charts.Series("recovery rate", [r.recovery_rate for r in by_class])],
            charts.percent,
            y_max=1.0,
            notes=[f"n={r.cases_closed:,}" for r in by_class],
        ),
        "failure-reasons": charts.bar_chart(
            "failure-reasons",
            f"Failure reasons: cases by first decline code{cur}",
            [r.value for r in top_codes],
            [charts.Series("cases", [float(r.cases_opened) for r in top_codes])],
            charts.plain,
        ),
        "email-funnel": charts.funnel_chart(
            "email-funnel", "Email funnel by step", funnel_steps(data.funnel)
        ),
        "ab-comparison": charts.interval_chart(
            "ab-comparison", "Recovery rate by policy (95% Wilson interval)", arms
        ),
        "recovered-by-channel": charts.bar_chart(
            "recovered-by-channel",
            f"Recovered revenue by channel{cur}",
            channel_labels,
            [charts.Series("recovered", channel_amounts)],
            money,
            notes=channel_notes,
        ),
        "days-to-recovery": charts.bar_chart(
            "days-to-recovery",
            f"Recoveries by day since failure{cur}: the last bar is {MAX_DAY} days or more",
            [str(d) for d in range(MAX_DAY + 1)],
            [charts.Series("cases", [float(day_counts.get(d, 0)) for d in range(MAX_DAY + 1)])],
            charts.plain,
        ),
    }
