"""How the dashboard shows its numbers and picks its period: pure, no server.

The page itself, in Chromium, is ``tests/e2e/test_dashboard.py``.
"""

from __future__ import annotations

import re
from datetime import date
from itertools import pairwise

import pytest

from dunning.reports import charts
from dunning.reports.dashboard import last_days, period
from dunning.reports.dashboard_charts import channel_bars, funnel_steps, money_axis
from dunning.reports.display import email_step_name, fmt_duration, fmt_money_axis
from dunning.reports.schemas import ChannelRow, FunnelRow

TODAY = date(2026, 12, 2)


@pytest.mark.parametrize(
    ("hours", "shown"),
    [
        (None, "-"),
        (0.001, "<1 min"),
        (7 / 60, "7 min"),
        (5.5, "5.5 h"),
        (47.9, "47.9 h"),
        (48, "2.0 d"),
        (200, "8.3 d"),
    ],
)
def test_time_to_recovery_reads_in_its_unit(hours: float | None, shown: str) -> None:
    assert fmt_duration(hours) == shown


def test_money_axis_labels_carry_the_currency() -> None:
    assert [fmt_money_axis(v, "usd") for v in (0, 250, 500_000, 1_500_000)] == [
        "$0",
        "$2.5",
        "$5k",
        "$15k",
    ]
    assert fmt_money_axis(50_000, "jpy") == "¥50k"  # no minor unit
    assert fmt_money_axis(1_234_500, "chf") == "CHF 12k"
    assert money_axis("eur")(2_000_000) == "€20k"


@pytest.mark.parametrize("top", [1, 2, 3, 4, 5, 7, 9, 13, 40, 41, 199, 4_900, 123_456])
def test_count_axes_are_whole_round_numbers(top: int) -> None:
    values = charts.ticks(top)
    assert values[0] == 0 and values[-1] >= top and len(values) <= 6
    assert all(v == int(v) for v in values)
    steps = {b - a for a, b in pairwise(values)}
    assert len(steps) == 1 and re.fullmatch(r"[125]0*", str(int(steps.pop())))


def test_a_rate_axis_keeps_its_quarters() -> None:
    assert charts.ticks(1.0, fixed=True) == [0, 0.25, 0.5, 0.75, 1.0]


def test_charts_with_nothing_to_draw_say_so_without_axes() -> None:
    zeros = charts.bar_chart("x", "Failed amount", ["Jan", "Feb"], [charts.Series("a", [0, 0])])
    assert 'data-empty="true"' in zeros and "no data in this period" in zeros
    assert "<svg" not in zeros and 'class="axis"' not in zeros
    nothing = charts.line_chart("y", "Rate", ["Jan"], [charts.Series("a", [None])])
    assert 'data-empty="true"' in nothing
    # A 0 % rate on a fixed axis is a value, not an empty chart.
    rates = charts.bar_chart(
        "z", "Rate", ["hard"], [charts.Series("r", [0.0])], charts.percent, y_max=1.0
    )
    assert "<svg" in rates and "100%" in rates


def test_the_funnel_names_each_step() -> None:
    rows = [
        FunnelRow(step=0, template="payment_failed", sent=4, link_opened=2, card_updated=1, paid=1),
        FunnelRow(
            step=None, template="final_notice", sent=2, link_opened=0, card_updated=0, paid=0
        ),
    ]
    steps = funnel_steps(rows)
    assert [name for name, _ in steps] == ["Email 1: payment failed", "Final notice"]
    drawn = charts.funnel_chart("email-funnel", "Email funnel by step", steps)
    assert 'data-step="Email 1: payment failed"' in drawn and ">Final notice<" in drawn
    assert email_step_name(None, "action_required") == "Action required"


def test_the_default_period_is_the_last_30_days_up_to_now() -> None:
    shown = period(None, None, None, None, TODAY)
    assert shown.default and shown.problem is None
    assert (shown.filters.start, shown.filters.end) == last_days(TODAY)
    assert shown.filters.end == date(2026, 12, 3)  # today included
    assert (shown.filters.end - shown.filters.start).days == 30


def test_an_unusable_period_is_named_and_the_default_shown() -> None:
    reversed_ = period("2026-11-10", "2026-11-01", "usd", None, TODAY)
    assert reversed_.default and reversed_.filters.currency == "usd"
    assert reversed_.problem == (
        "'To' (2026-11-01) must be after 'From' (2026-11-10). Showing the last 30 days instead."
    )
    malformed = period("yesterday", None, None, None, TODAY)
    assert malformed.problem is not None and "like 2026-10-01" in malformed.problem
    bad_currency = period("2026-10-01", "2026-11-01", "dollars", None, TODAY)
    assert bad_currency.problem is not None and bad_currency.filters.currency is None
    only_from = period("2026-11-20", None, None, None, TODAY)
    assert not only_from.default
    assert (only_from.filters.start, only_from.filters.end) == (
        date(2026, 11, 20),
        date(2026, 12, 3),
    )


def test_the_channel_chart_shows_the_card_updater_and_sms() -> None:
    def row(channel: str, cases: int, amount: int, **extra: int) -> ChannelRow:
        return ChannelRow(
            currency="usd", channel=channel, cases=cases, amount=amount, share=None, **extra
        )

    rows = [
        row("retry", 3, 9000),
        row("processor", 1, 1000),
        row("customer", 2, 4000),
        row("card_updater", 2, 5000, calls=40, hits=9),
        row("sms", 1, 3000, sent=1200),
    ]
    labels, amounts, notes = channel_bars(rows)
    assert labels == ["retry", "processor", "customer", "card updater", "after SMS link"]
    assert amounts == [9000, 1000, 4000, 5000, 3000]
    assert notes == ["3 cases", "1 case", "2 cases", "2 cases · 9/40 hits", "1 of 1,200 sent"]
    drawn = charts.bar_chart(
        "recovered-by-channel", "Recovered", labels, [charts.Series("recovered", amounts)],
        notes=notes,
    )  # fmt: skip
    assert drawn.count("<rect") == 5
    assert "recovered after SMS link: 3,000" in drawn and ">1 of 1,200 sent<" in drawn
    assert ">2 cases · 9/40 hits<" in drawn
