"""``dunning report``: the finance reports in the terminal, or as CSV."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from dunning.reports.csvio import to_csv
from dunning.reports.display import fmt_duration, fmt_money, fmt_rate
from dunning.reports.metrics.headline import headline
from dunning.reports.schemas import Filters
from dunning.reports.snapshot import reading
from dunning.reports.tables import TABLES, compute, filters, last_full_month
from dunning.startup import setup

report_app = typer.Typer(
    help="Finance reports: recovery, recovered revenue, involuntary churn.", no_args_is_help=True
)

FromOption = Annotated[
    datetime | None,
    typer.Option(
        "--from",
        formats=["%Y-%m-%d"],
        metavar="YYYY-MM-DD",
        help="first day (default: last month's)",
    ),
]
ToOption = Annotated[
    datetime | None,
    typer.Option(
        "--to", formats=["%Y-%m-%d"], metavar="YYYY-MM-DD", help="day after the period (exclusive)"
    ),
]
CurrencyOption = Annotated[str | None, typer.Option(help="only this currency, e.g. usd")]
SegmentOption = Annotated[str | None, typer.Option(help="only this customer segment")]


def _filters(
    start: datetime | None, end: datetime | None, currency: str | None, segment: str | None
) -> Filters:
    default_start, default_end = last_full_month()
    try:
        return filters(
            start.date() if start else default_start,
            end.date() if end else default_end,
            currency,
            segment,
        )
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def _days(hours: float | None) -> str:
    """Like the dashboard's, without the space: the table's columns are narrow."""
    return fmt_duration(hours, sep="")


@report_app.command("recovery")
def recovery(
    start: FromOption = None,
    end: ToOption = None,
    currency: CurrencyOption = None,
    segment: SegmentOption = None,
) -> None:
    """The headline table: failure rate, recovery, recovered revenue, churn, per currency."""
    setup()
    f = _filters(start, end, currency, segment)
    with reading() as conn:
        rows = headline(conn, f)
    typer.echo(
        f"Cases opened {f.start} .. {f.end} (exclusive), UTC"
        + (f", segment {f.segment}" if f.segment else "")
    )
    header = (
        "currency",
        "failure rate",
        "cases",
        "closed",
        "recovered",
        "recovery rate",
        "failed",
        "recovered amt",
        "by amount",
        "median/p90",
        "churned",
        "churn rate",
        "MRR lost",
    )
    table = [header]
    for r in rows:
        table.append(
            (
                r.currency.upper(),
                f"{fmt_rate(r.failure_rate)} ({r.renewals_failed}/{r.renewals_attempted})",
                f"{r.cases_opened:,}",
                f"{r.cases_closed:,}",
                f"{r.cases_recovered:,}",
                fmt_rate(r.recovery_rate),
                fmt_money(r.failed_amount, r.currency),
                fmt_money(r.recovered_amount, r.currency),
                fmt_rate(r.recovery_rate_amount),
                f"{_days(r.median_hours_to_recovery)}/{_days(r.p90_hours_to_recovery)}",
                f"{r.churned_subscriptions}/{r.active_subscriptions_at_start}",
                fmt_rate(r.involuntary_churn_rate),
                fmt_money(r.churned_mrr, r.currency),
            )
        )
    if not rows:
        typer.echo("no failed renewals, cases or churn in this period")
        return
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for n, row in enumerate(table):
        typer.echo(
            "  ".join(
                str(v).ljust(w) if i == 0 else str(v).rjust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            typer.echo("  ".join("-" * w for w in widths))


@report_app.command("csv")
def csv(
    table: Annotated[str, typer.Argument(help="a report table, e.g. recovery, channels, ab")],
    start: FromOption = None,
    end: ToOption = None,
    currency: CurrencyOption = None,
    segment: SegmentOption = None,
) -> None:
    """Print one report table as CSV (the same as the API's ?format=csv)."""
    setup()
    if table not in TABLES:
        typer.echo(f"unknown table {table!r}; one of: {', '.join(TABLES)}", err=True)
        raise typer.Exit(2)
    f = _filters(start, end, currency, segment)
    typer.echo(to_csv(TABLES[table].row, compute(table, f)), nl=False)
