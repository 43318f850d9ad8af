"""An SVG chart of cumulative recovered amount by day since the failure, one line per policy.

Why plain SVG built from strings: one small file any browser opens, and no plotting
library to install for a chart of a few lines.
"""

from __future__ import annotations

from html import escape

from dunning.backtest.report import CURVE_DAYS
from dunning.backtest.runner import Backtest

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f")
WIDTH, PANEL, LEFT, TOP, RIGHT, BOTTOM = 760, 300, 56, 34, 210, 40


def _panel(bt: Backtest, index: int) -> list[str]:
    run = bt.runs[index]
    y0 = index * PANEL
    plot_w, plot_h = WIDTH - LEFT - RIGHT, PANEL - TOP - BOTTOM
    curves = [(s.name, s.cumulative_pct()) for s in run.summaries]
    top = max([10.0, *(max(c) for _, c in curves)])
    top = float(int(top / 10) + 1) * 10

    def x(day: int) -> float:
        return LEFT + plot_w * day / CURVE_DAYS

    def y(pct: float) -> float:
        return y0 + TOP + plot_h * (1 - pct / top)

    out = [
        f'<text x="{LEFT}" y="{y0 + 20}" font-size="14" font-weight="bold">'
        f"world {escape(run.world.name)}: recovered % of failed amount by day</text>",
        f'<line x1="{LEFT}" y1="{y(0):.1f}" x2="{LEFT + plot_w}" y2="{y(0):.1f}" stroke="#333"/>',
        f'<line x1="{LEFT}" y1="{y(0):.1f}" x2="{LEFT}" y2="{y(top):.1f}" stroke="#333"/>',
    ]
    for pct in range(0, int(top) + 1, 10):
        out.append(
            f'<line x1="{LEFT}" y1="{y(pct):.1f}" x2="{LEFT + plot_w}" y2="{y(pct):.1f}" '
            'stroke="#ddd"/>'
            f'<text x="{LEFT - 6}" y="{y(pct) + 4:.1f}" font-size="10" text-anchor="end">'
            f"{pct}%</text>"
        )
    for day in range(0, CURVE_DAYS + 1, 7):
        out.append(
            f'<text x="{x(day):.1f}" y="{y(0) + 14:.1f}" font-size="10" text-anchor="middle">'
            f"{day}</text>"
        )
    out.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{y(0) + 30:.1f}" font-size="11" '
        'text-anchor="middle">days since the failure</text>'
    )
    for i, (name, curve) in enumerate(curves):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in enumerate(curve))
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        ly = y0 + TOP + 16 * i
        out.append(
            f'<line x1="{WIDTH - RIGHT + 12}" y1="{ly}" x2="{WIDTH - RIGHT + 32}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="3"/>'
            f'<text x="{WIDTH - RIGHT + 38}" y="{ly + 4}" font-size="11">'
            f"{escape(name)} ({curve[-1]:.1f}%)</text>"
        )
    return out


def svg(bt: Backtest) -> str:
    """The chart of every world of the run, one panel each."""
    height = PANEL * len(bt.runs)
    body = [line for i in range(len(bt.runs)) for line in _panel(bt, i)]
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">',
            f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
            *body,
            "</svg>",
            "",
        ]
    )
