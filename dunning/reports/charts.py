"""Charts as inline SVG, drawn on the server: no JavaScript, no CDN, works offline.

Each function returns the ``<svg>`` element as ``Markup``; every label is escaped. The
``data-chart`` attribute names the chart (the end-to-end test looks for each one).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = ("#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#4b5563")
WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 36, 56

Format = Callable[[float], str]


def percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def plain(value: float) -> str:
    return f"{value:,.0f}"


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value``."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1) if value >= 1 else 0.1
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return float(step * magnitude)
    return float(10 * magnitude)


def _open(name: str, title: str, height: int = HEIGHT) -> list[str]:
    t = escape(title)
    return [
        f'<svg class="chart" data-chart="{escape(name)}" viewBox="0 0 {WIDTH} {height}" '
        f'width="100%" role="img" aria-label="{t}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{t}</title>",
        f'<text x="{LEFT}" y="20" class="chart-title">{t}</text>',
    ]


def _empty(name: str, title: str) -> Markup:
    parts = _open(name, title)
    parts.append(
        f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="muted">'
        "no data for this period</text></svg>"
    )
    return Markup("".join(parts))


def _y_axis(parts: list[str], y_max: float, fmt: Format, height: int = HEIGHT) -> None:
    plot_h = height - TOP - BOTTOM
    for i in range(5):
        value = y_max * i / 4
        y = height - BOTTOM - plot_h * i / 4
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
    if not labels or not values:
        return _empty(name, title)
    top = y_max if y_max is not None else _nice_max(max(values))
    parts = _open(name, title)
    _y_axis(parts, top, fmt)
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
    if not labels or not values:
        return _empty(name, title)
    top = y_max if y_max is not None else _nice_max(max(values))
    parts = _open(name, title)
    _y_axis(parts, top, fmt)
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


def funnel_chart(name: str, title: str, stages: Sequence[tuple[str, int]]) -> Markup:
    """Horizontal bars, widest first, each with its count and share of the first stage."""
    if not stages or stages[0][1] == 0:
        return _empty(name, title)
    row = 44
    height = TOP + row * len(stages) + 12
    parts = _open(name, title, height)
    first = stages[0][1]
    label_w, plot_w = 130, WIDTH - 130 - RIGHT - 90
    for i, (label, count) in enumerate(stages):
        y = TOP + row * i
        w = plot_w * count / first
        share = count / first
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 22}" text-anchor="end" class="axis">'
            f"{escape(label)}</text>"
            f'<rect x="{label_w}" y="{y + 6}" width="{w:.1f}" height="26" '
            f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(label)}: {count}</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 24}" class="axis">'
            f"{count:,} ({share * 100:.0f}%)</text>"
        )
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
