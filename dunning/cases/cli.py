"""``dunning cases``: read and act on dunning cases from the terminal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from dunning.cases.models import CaseState
from dunning.policy.declines import DeclineClass
from dunning.startup import setup

app = typer.Typer(
    help="Dunning cases: list, show, retry now, pause, resume, write off.", no_args_is_help=True
)


@app.command("list")
def list_(
    state: Annotated[CaseState | None, typer.Option(help="Only cases in this state.")] = None,
    customer: Annotated[
        str | None, typer.Option(help="The customer's id, email address or name.")
    ] = None,
    decline_class: Annotated[
        DeclineClass | None, typer.Option(help="Only cases whose last decline is of this class.")
    ] = None,
    opened_from: Annotated[
        datetime | None, typer.Option(help="Opened at or after this date (UTC).")
    ] = None,
    opened_to: Annotated[
        datetime | None, typer.Option(help="Opened before this date (UTC).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """Cases, newest first."""
    setup()
    from dunning.cases import ops
    from dunning.db import session_scope

    query = ops.case_query(
        state=state,
        customer=customer,
        decline_class=decline_class,
        opened_from=opened_from and _utc(opened_from),
        opened_to=opened_to and _utc(opened_to),
    )
    with session_scope() as session:
        cases = session.scalars(query.limit(limit))
        for c in cases:
            typer.echo(
                f"{c.id:>6}  {c.state:<13} {(c.amount or 0) / 100:>10.2f} {c.currency or '':<3}  "
                f"{c.customer_id or '-':<22} opened {c.opened_at:%Y-%m-%d %H:%M}"
                f"{'  (paused)' if c.paused else ''}"
            )


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@app.command()
def show(case_id: int) -> None:
    """A case with its attempts, decisions and actions."""
    setup()
    from dunning.cases import ops
    from dunning.cases.models import DunningCase
    from dunning.db import session_scope

    with session_scope() as session:
        case = session.get(DunningCase, case_id)
        if case is None:
            typer.echo(f"no case {case_id}", err=True)
            raise typer.Exit(1)
        typer.echo(
            f"case {case.id}: {case.state}{' (paused)' if case.paused else ''}, "
            f"invoice {case.invoice_id}, {(case.amount or 0) / 100:.2f} {case.currency}"
        )
        line = ops.timeline(session, case)
        for a in line["attempts"]:
            what = f"attempt {a.attempt_number}" if a.attempt_number else "payment"
            typer.echo(
                f"  {what} {a.attempted_at:%Y-%m-%d %H:%M} "
                f"{a.outcome} {a.decline_code or a.failure_code or ''} by {a.triggered_by}"
            )
        for d in line["decisions"]:
            due = f"{d.due_at:%Y-%m-%d %H:%M}" if d.due_at else "-"
            typer.echo(f"  decision {d.kind} at {due}: {d.reason}")
        for n in line["notifications"]:
            typer.echo(
                f"  {n.channel} {n.template} ({n.locale or 'en'}) to {n.recipient or '-'}: "
                f"{n.status}{' — ' + n.error if n.error else ''}"
            )
        for x in line["actions"]:
            typer.echo(
                f"  action {x.dedupe_key} {x.status} due {x.due_at:%Y-%m-%d %H:%M}"
                f"{' — ' + x.result if x.result else ''}"
            )


def _act(case_id: int, done: str, change: Callable[[Session, str, datetime], object]) -> None:
    setup()
    from dunning.admin.actors import cli_actor
    from dunning.cases import ops
    from dunning.db import session_scope

    try:
        with session_scope() as session:
            change(session, cli_actor(), datetime.now(UTC))
    except ops.CaseActionRefused as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"case {case_id}: {done}")


@app.command("retry-now")
def retry_now(case_id: int) -> None:
    """Retry within minutes, if the card networks' rules allow it."""
    from dunning.cases import ops

    _act(case_id, "retry scheduled", lambda s, a, now: ops.retry_now(s, case_id, a, now))


@app.command()
def pause(case_id: int) -> None:
    """Stop retries and end actions until resumed."""
    from dunning.cases import ops

    _act(case_id, "paused", lambda s, a, now: ops.pause(s, case_id, a))


@app.command()
def resume(case_id: int) -> None:
    """Let the policy plan the case again."""
    from dunning.cases import ops

    _act(case_id, "resumed", lambda s, a, now: ops.resume(s, case_id, a, now))


@app.command("write-off")
def write_off(case_id: int) -> None:
    """Mark the invoice uncollectible now and close the case."""
    from dunning.cases import ops

    _act(case_id, "written off", lambda s, a, now: ops.write_off(s, case_id, a, now))
