"""Charts as inline SVG, drawn on the server: no JavaScript, no CDN, works offline.

Each function returns the ``<svg>`` element as ``Markup``; every label is escaped. The
``data-chart`` attribute names the chart (the end-to-end test looks for each one). A chart
with nothing to draw says so in one line instead of drawing axes around nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = ("#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#4b5563")
WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 36, 56

NO_DATA = "no data in this period"

Format = Callable[[float], str]


def percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def plain(value: float) -> str:
    return f"{value:,.0f}"


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]


def ticks(top: float, fixed: bool = False) -> list[float]:
    """Axis values from 0 to at least ``top`` in round steps (1, 2 or 5 times a power of
    ten, never below 1: counts and minor units are whole numbers, so an axis never reads
    0, 0, 1, 1, 1). ``fixed``: ``top`` is the axis maximum (a rate's 100 %), in quarters."""
    if fixed:
        return [top * i / 4 for i in range(5)]
    step = next(m * 10**k for k in range(19) for m in (1, 2, 5) if m * 10**k * 4 >= top)
    return [float(step * i) for i in range(max(1, math.ceil(top / step)) + 1)]


def _has_data(values: Sequence[float | None], fixed: bool) -> bool:
    """Something to draw: a value, and on a data-scaled axis one that is not zero."""
    present = [v for v in values if v is not None]
    return bool(present) and (fixed or any(v > 0 for v in present))


def _open(name: str, title: str, height: int = HEIGHT) -> list[str]:
    t = escape(title)
    return [
        f'<svg class="chart" data-chart="{escape(name)}" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{t}</title>",
        f'<text x="{LEFT}" y="20" class="chart-title">{t}</text>',
    ]


def _empty(name: str, title: str) -> Markup:
    """The title and one plain sentence, as text of the page: no axes, no zero labels."""
    return Markup(
        f'<div class="chart empty" data-chart="{escape(name)}" data-empty="true">'
        f'<p class="chart-title">{escape(title)}</p><p class="muted">{NO_DATA}</p></div>'
    )


def _y_axis(parts: list[str], values: Sequence[float], fmt: Format, height: int = HEIGHT) -> None:
    plot_h = height - TOP - BOTTOM
    top = values[-1]
    for value in values:
        y = height - BOTTOM - plot_h * value / top
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
            f"{escape(fmt(value))}</text>"
        )


def _x_labels(parts: list[str], labels: Sequence[str], centres: Sequence[float]) -> None:
    """Labels under the axis; tilted (and cut at 18 characters) when they would overlap."""
    every = max(1, len(labels) // 12)
    step = (centres[1] - centres[0]) * every if len(centres) > 1 else WIDTH
    tilt = max(len(label) for label in labels) * 6.2 > step
    y = HEIGHT - BOTTOM + 16
    for i, (label, x) in enumerate(zip(labels, centres, strict=True)):
        if i % every:
            continue
        if tilt:
            short = label if len(label) <= 18 else label[:17] + "…"
            parts.append(
                f'<text x="{x:.1f}" y="{y - 4}" text-anchor="end" class="axis" '
                f'transform="rotate(-25 {x:.1f} {y - 4})">{escape(short)}'
                f"<title>{escape(label)}</title></text>"
            )
        else:
            parts.append(
                f'<text x="{x:.1f}" y="{y}" text-anchor="middle" class="axis">'
                f"{escape(label)}</text>"
            )


def _legend(parts: list[str], series: Sequence[Series]) -> None:
    if len(series) < 2:
        return
    x = LEFT
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        parts.append(
            f'<rect x="{x}" y="{HEIGHT - 22}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{x + 14}" y="{HEIGHT - 13}" class="axis">{escape(s.name)}</text>'
        )
        x += 24 + 7 * len(s.name)


def line_chart(
    name: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Format = percent,
    y_max: float | None = None,
) -> Markup:
    """Lines over categories (months); a missing value breaks the line."""
    values = [v for s in series for v in s.values if v is not None]
    if not labels or not _has_data(values, y_max is not None):
        return _empty(name, title)
    axis = ticks(y_max if y_max is not None else max(values), fixed=y_max is not None)
    top = axis[-1]
    parts = _open(name, title)
    _y_axis(parts, axis, fmt)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / len(labels)
    centres = [LEFT + step * (i + 0.5) for i in range(len(labels))]
    _x_labels(parts, labels, centres)
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        segment: list[str] = []
        points: list[str] = []
        for x, label, v in zip(centres, labels, s.values, strict=True):
            if v is None:
                if len(segment) > 1:
                    points.append(" ".join(segment))
                segment = []
                continue
            y = HEIGHT - BOTTOM - plot_h * min(v, top) / top
            segment.append(f"{x:.1f},{y:.1f}")
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{colour}">'
                f"<title>{escape(s.name)} {escape(label)}: {escape(fmt(v))}</title></circle>"
            )
        if len(segment) > 1:
            points.append(" ".join(segment))
        for line in points:
            parts.append(
                f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>'
            )
    _legend(parts, series)
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(
    name: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Format = plain,
    y_max: float | None = None,
    notes: Sequence[str] | None = None,
) -> Markup:
    """Vertical bars, grouped when there are several series; ``notes`` go under labels."""
    values = [v for s in series for v in s.values if v is not None]
    if not labels or not _has_data(values, y_max is not None):
        return _empty(name, title)
    axis = ticks(y_max if y_max is not None else max(values), fixed=y_max is not None)
    top = axis[-1]
    parts = _open(name, title)
    _y_axis(parts, axis, fmt)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group = plot_w / len(labels)
    bar = group * 0.8 / len(series)
    centres = [LEFT + group * (i + 0.5) for i in range(len(labels))]
    _x_labels(parts, labels, centres)
    if notes:
        for x, note in zip(centres, notes, strict=True):
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 30}" text-anchor="middle" '
                f'class="note">{escape(note)}</text>'
            )
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        for j, (label, v) in enumerate(zip(labels, s.values, strict=True)):
            if v is None:
                continue
            h = plot_h * max(min(v, top), 0) / top
            x = LEFT + group * j + group * 0.1 + bar * i
            parts.append(
                f'<rect x="{x:.1f}" y="{HEIGHT - BOTTOM - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(s.name)} {escape(label)}: '
                f"{escape(fmt(v))}</title></rect>"
            )
    _legend(parts, series)
    parts.append("</svg>")
    return Markup("".join(parts))


Stages = Sequence[tuple[str, int]]


def funnel_chart(name: str, title: str, steps: Sequence[tuple[str, Stages]]) -> Markup:
    """One funnel per named step: its stages as bars, widest first, each with its count
    and share of the step's first stage. Steps whose first stage is 0 are left out."""
    shown = [(step, stages) for step, stages in steps if stages and stages[0][1] > 0]
    if not shown:
        return _empty(name, title)
    row, head = 30, 26
    height = TOP + sum(head + row * len(stages) for _, stages in shown) + 8
    parts = _open(name, title, height)
    label_w, plot_w = 130, WIDTH - 130 - RIGHT - 90
    y = TOP
    for step, stages in shown:
        parts.append(
            f'<text x="{LEFT // 4}" y="{y + 18}" class="step" data-step="{escape(step)}">'
            f"{escape(step)}</text>"
        )
        y += head
        first = stages[0][1]
        for i, (label, count) in enumerate(stages):
            w = plot_w * count / first
            parts.append(
                f'<text x="{label_w - 8}" y="{y + 19}" text-anchor="end" class="axis">'
                f"{escape(label)}</text>"
                f'<rect x="{label_w}" y="{y + 4}" width="{w:.1f}" height="22" '
                f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(step)}, {escape(label)}: '
                f"{count}</title></rect>"
                f'<text x="{label_w + w + 6:.1f}" y="{y + 19}" class="axis">'
                f"{count:,} ({count / first * 100:.0f}%)</text>"
            )
            y += row
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class Interval:
    label: str
    rate: float | None
    low: float | None
    high: float | None
    n: int


def interval_chart(name: str, title: str, arms: Sequence[Interval]) -> Markup:
    """Each arm's rate as a dot with its confidence interval as a whisker, on 0-100 %."""
    shown = [a for a in arms if a.rate is not None]
    if not shown:
        return _empty(name, title)
    row = 48
    height = TOP + row * len(shown) + 30
    parts = _open(name, title, height)
    label_w = 170
    plot_w = WIDTH - label_w - RIGHT - 20

    def x_of(v: float) -> float:
        return label_w + plot_w * v

    for i in range(5):
        x = x_of(i / 4)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{height - 26}" class="grid"/>'
            f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle" class="axis">'
            f"{i * 25}%</text>"
        )
    for i, a in enumerate(shown):
        assert a.rate is not None
        y = TOP + row * i + row / 2
        colour = PALETTE[i % len(PALETTE)]
        parts.append(
            f'<text x="{label_w - 8}" y="{y - 2:.1f}" text-anchor="end" class="axis">'
            f"{escape(a.label)}</text>"
            f'<text x="{label_w - 8}" y="{y + 12:.1f}" text-anchor="end" class="note">'
            f"n = {a.n:,}</text>"
        )
        if a.low is not None and a.high is not None:
            parts.append(
                f'<line x1="{x_of(a.low):.1f}" x2="{x_of(a.high):.1f}" y1="{y:.1f}" '
                f'y2="{y:.1f}" stroke="{colour}" stroke-width="3"/>'
                f'<line x1="{x_of(a.low):.1f}" x2="{x_of(a.low):.1f}" y1="{y - 7:.1f}" '
                f'y2="{y + 7:.1f}" stroke="{colour}" stroke-width="2"/>'
                f'<line x1="{x_of(a.high):.1f}" x2="{x_of(a.high):.1f}" y1="{y - 7:.1f}" '
                f'y2="{y + 7:.1f}" stroke="{colour}" stroke-width="2"/>'
            )
        ci = (
            ""
            if a.low is None or a.high is None
            else f" (95% CI {a.low * 100:.1f}-{a.high * 100:.1f}%)"
        )
        parts.append(
            f'<circle cx="{x_of(a.rate):.1f}" cy="{y:.1f}" r="6" fill="{colour}">'
            f"<title>{escape(a.label)}: {a.rate * 100:.1f}%{escape(ci)}, n = {a.n}</title>"
            "</circle>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
