"""``dunning policy``: apply, list, show, activate, split and preview retry policies.

Each command is one transaction around the same store function the admin API calls;
changes are audited as ``cli:<os user>``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from dunning.admin.actors import cli_actor
from dunning.db import session_scope
from dunning.policy import activation, preview_request
from dunning.policy.activation import Activation
from dunning.policy.errors import PolicyStoreError
from dunning.policy.models import PolicyError, parse_policy
from dunning.policy.schedule_view import Row, RowKind, local, timeline
from dunning.policy.store import apply_policy
from dunning.policy.versions import get_policy, list_policies
from dunning.settings import get_settings
from dunning.startup import setup
from dunning.timezones import parse_zone

policy_app = typer.Typer(
    help="Retry policies: versions, activation, A/B split, preview.", no_args_is_help=True
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


def _when(t: datetime, tz: str = "UTC") -> str:
    """``t`` in zone ``tz``, which the preview has already checked."""
    return f"{t.astimezone(parse_zone(tz)):%a %Y-%m-%d %H:%M %Z}"


@policy_app.command("apply")
def apply(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="policy TOML")],
) -> None:
    """Store a new policy version (not activated); the same text again changes nothing."""
    setup()
    text = file.read_text(encoding="utf-8")
    try:
        with session_scope() as session:
            stored = apply_policy(session, text, cli_actor(), origin=str(file))
    except (PolicyError, PolicyStoreError) as exc:
        raise _fail(str(exc)) from None
    if stored.created:
        typer.echo(
            f"stored {stored.label} (id {stored.id}); make it active with: "
            f"dunning policy activate {stored.name} {stored.version}"
        )
    else:
        typer.echo(f"{stored.label} is already stored with this exact text; nothing changed")


@policy_app.command("list")
def list_() -> None:
    """Every stored version, with the active one and the A/B split."""
    setup()
    with session_scope() as session:
        act = activation.current_activation(session)
        policies = list_policies(session)
    typer.echo(
        f"{'name':<20} {'version':>7}  {'status':<9} {'traffic':>7}  "
        f"{'created (UTC)':<17} {'by':<20} description"
    )
    for p in policies:
        created = f"{p.created_at.astimezone(UTC):%Y-%m-%d %H:%M}"
        typer.echo(
            f"{p.name:<20} {p.version:>7}  {act.status(p.id):<9} {act.share(p.id):>6}%  "
            f"{created:<17} {p.created_by:<20} {p.policy.description}"
        )


@policy_app.command("show")
def show(
    name: str,
    version: Annotated[int | None, typer.Argument(help="default: the latest")] = None,
) -> None:
    """A version's status and its TOML source."""
    setup()
    try:
        with session_scope() as session:
            act = activation.current_activation(session)
            p = get_policy(session, name, version)
    except PolicyStoreError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"# {p.label} (id {p.id}): {act.status(p.id)}, {act.share(p.id)}% of customers")
    typer.echo(f"# stored {_when(p.created_at)} by {p.created_by}\n")
    typer.echo(p.source)


def _print_activation(act: Activation) -> None:
    line = f"active: {act.active.label}"
    if act.split is not None:
        line += f"; split: {act.split.label} for {act.split_percent}% of customers"
    typer.echo(line)


@policy_app.command("activate")
def activate(name: str, version: int) -> None:
    """Make a version the one new cases get (also how to roll back); ends any split."""
    setup()
    try:
        with session_scope() as session:
            act = activation.activate(session, name, version, cli_actor())
    except PolicyStoreError as exc:
        raise _fail(str(exc)) from None
    _print_activation(act)


@policy_app.command("split")
def split(
    name: str,
    version: int,
    percent: Annotated[int, typer.Argument(min=0, max=100, help="0 ends the split")],
) -> None:
    """A/B test: PERCENT % of customers (a stable hash of their id) get this version."""
    setup()
    try:
        with session_scope() as session:
            act = activation.set_split(session, name, version, percent, cli_actor())
    except PolicyStoreError as exc:
        raise _fail(str(exc)) from None
    _print_activation(act)


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO time like 2025-03-03T09:30Z") from None


def _print_timeline(rows: list[Row], tz: str) -> None:
    """One row per step in time order: ``#`` is the attempt a retry makes."""
    zone = parse_zone(tz)
    local_header = f"customer time ({tz})"
    width = max(len(local_header), 24) + 2
    typer.echo(f"\n{'#':>3}  {'step':<16} {local_header:<{width}} UTC")
    for r in rows:
        number = "-" if r.attempt_number is None else str(r.attempt_number)
        utc = f"{r.at.astimezone(UTC):%Y-%m-%d %H:%M}"
        typer.echo(f"{number:>3}  {r.kind.value:<16} {local(r.at, zone):<{width}} {utc}")
        typer.echo(f"{'':>5}{r.what}")
        if r.reason and r.kind is not RowKind.GIVE_UP:
            typer.echo(f"{'':>5}why: {r.reason}")


@policy_app.command("preview")
def preview(
    file: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="a policy TOML, not stored")
    ] = None,
    name: Annotated[str | None, typer.Option(help="a stored policy (default: the active)")] = None,
    version: Annotated[int | None, typer.Option(help="its version (default: latest)")] = None,
    decline_code: Annotated[str | None, typer.Option(help="e.g. insufficient_funds")] = None,
    failure_code: Annotated[str | None, typer.Option(help="e.g. card_declined")] = None,
    advice_code: Annotated[str | None, typer.Option(help="Stripe advice_code")] = None,
    network_advice_code: Annotated[str | None, typer.Option(help="e.g. Mastercard MAC")] = None,
    network_decline_code: Annotated[str | None, typer.Option()] = None,
    brand: Annotated[str | None, typer.Option(help="card brand, e.g. visa")] = None,
    amount: Annotated[int, typer.Option(min=1, help="minor units")] = 4900,
    currency: Annotated[str, typer.Option()] = "usd",
    time_zone: Annotated[str, typer.Option(help="the customer's IANA zone")] = "UTC",
    failed_at: Annotated[
        str | None, typer.Option(help="ISO time of the failure (default now; naive is UTC)")
    ] = None,
    processor_retry_at: Annotated[
        str | None, typer.Option(help="ISO time of Stripe's own retry of the invoice, if any")
    ] = None,
    backup_cards: Annotated[
        int, typer.Option(min=0, max=5, help="other cards on file, for a policy's cascade")
    ] = 0,
) -> None:
    """The retries, waits and emails a policy would follow after one failure, in the
    customer's time."""
    when = _parse_time(failed_at)
    processor_retry = _parse_time(processor_retry_at)
    failure = preview_request.Hypothetical(
        decline_code=decline_code,
        failure_code=failure_code,
        advice_code=advice_code,
        network_advice_code=network_advice_code,
        network_decline_code=network_decline_code,
        card_brand=brand,
        amount=amount,
        currency=currency,
        time_zone=time_zone,
        failed_at=preview_request.as_utc(when or datetime.now(UTC)),
        processor_retry_at=processor_retry,
        backup_cards=backup_cards,
    )
    try:
        if file is not None:  # a file needs no database: none is started
            if name is not None or version is not None:
                raise _fail("give either --file or --name/--version, not both")
            policy = parse_policy(file.read_text(encoding="utf-8"), source=str(file))
        else:
            setup()
            with session_scope() as session:
                _, policy = preview_request.policy_to_preview(session, name=name, version=version)
        decisions = preview_request.preview(policy, failure)
    except (PolicyError, PolicyStoreError) as exc:
        raise _fail(str(exc)) from None
    code = decline_code or failure_code or "no code"
    assert failure.failed_at is not None
    typer.echo(
        f"policy {policy.name} v{policy.version} · {code} · {brand or 'any brand'} · {time_zone}"
    )
    typer.echo(
        f"first failure {_when(failure.failed_at, time_zone)} "
        f"({failure.failed_at:%Y-%m-%d %H:%M} UTC), class {decisions[0].decline_class}"
    )
    settings = get_settings()
    hours = (settings.email_hours_start, settings.email_hours_end)
    typer.echo(
        f"emails go out between {hours[0]:02d}:00 and {hours[1]:02d}:00 customer time, "
        "none after the case ends"
    )
    rows = timeline(
        policy, decisions, failed_at=failure.failed_at, tz=parse_zone(time_zone), email_hours=hours
    )
    _print_timeline(rows, time_zone)
