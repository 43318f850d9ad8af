"""The preview's time line as a small inline SVG: retries and the end on one lane, the
emails on another, a wait as a band, by day since the failure.

Why SVG built from strings: the dashboard draws its charts the same way, no library
and no script; the table under the chart says the same in words.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from markupsafe import Markup

from dunning.policy.schedule_view import Row, RowKind

WIDTH, HEIGHT, LEFT, RIGHT = 760, 150, 70, 20
RETRY_Y, EMAIL_Y, AXIS_Y = 45, 90, 118


def _days(at: datetime, failed_at: datetime) -> float:
    return (at - failed_at).total_seconds() / 86400


def schedule_svg(rows: list[Row], failed_at: datetime, max_days: int) -> Markup:
    """Markers per step: circle a retry, diamond the end, square an email."""
    span = max([float(max_days), *(_days(r.until or r.at, failed_at) for r in rows)], default=1.0)
    span = max(span, 1.0)
    plot = WIDTH - LEFT - RIGHT

    def x(days: float) -> float:
        return LEFT + plot * max(0.0, min(days, span)) / span

    step = 1 if span <= 14 else 7
    out = [
        f'<svg class="schedule" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" role="img" '
        'aria-labelledby="schedule-title" data-chart="schedule">',
        '<title id="schedule-title">Retries and emails by day since the failure</title>',
        f'<text x="4" y="{RETRY_Y + 4}" class="lane">retries</text>',
        f'<text x="4" y="{EMAIL_Y + 4}" class="lane">emails</text>',
        f'<line x1="{LEFT}" y1="{AXIS_Y}" x2="{WIDTH - RIGHT}" y2="{AXIS_Y}" stroke="#9ca3af"/>',
    ]
    for day in range(0, int(span) + 1, step):
        out.append(
            f'<line x1="{x(day):.1f}" y1="{RETRY_Y - 18}" x2="{x(day):.1f}" y2="{AXIS_Y}" '
            'stroke="#e5e7eb"/>'
            f'<text x="{x(day):.1f}" y="{AXIS_Y + 14}" text-anchor="middle" fill="#374151">'
            f"{day}</text>"
        )
    out.append(
        f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 2}" text-anchor="end" fill="#6b7280">'
        "days since the failure</text>"
    )
    for r in rows:
        cx = x(_days(r.at, failed_at))
        label = escape(f"day {_days(r.at, failed_at):.1f}: {r.what}")
        if r.kind is RowKind.RETRY:
            out.append(
                f'<circle cx="{cx:.1f}" cy="{RETRY_Y}" r="7" fill="#2563eb" data-kind="retry">'
                f"<title>{label}</title></circle>"
                f'<text x="{cx:.1f}" y="{RETRY_Y - 11}" text-anchor="middle" fill="#1e3a8a">'
                f"{r.attempt_number or ''}</text>"
            )
        elif r.kind is RowKind.GIVE_UP:
            out.append(
                f'<path d="M{cx:.1f} {RETRY_Y - 9} l9 9 l-9 9 l-9 -9 z" fill="#b91c1c" '
                f'data-kind="give_up"><title>{label}</title></path>'
            )
        elif r.kind is RowKind.EMAIL:
            out.append(
                f'<rect x="{cx - 6:.1f}" y="{EMAIL_Y - 6}" width="12" height="12" rx="2" '
                f'fill="#059669" data-kind="email"><title>{label}</title></rect>'
            )
        else:  # a wait for the customer or a new card, until the deadline
            end = x(_days(r.until or r.at, failed_at))
            out.append(
                f'<rect x="{cx:.1f}" y="{RETRY_Y - 5}" width="{max(end - cx, 2):.1f}" '
                f'height="10" fill="#fde68a" stroke="#f59e0b" data-kind="{r.kind.value}">'
                f"<title>{label}</title></rect>"
            )
    out.append("</svg>")
    return Markup("".join(out))
