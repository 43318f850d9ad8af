"""``dunning keys``: API keys are made and revoked here only, never over HTTP."""

from __future__ import annotations

from datetime import UTC
from typing import Annotated

import typer

from dunning.admin.keys import ApiKeyError, create_api_key, list_api_keys, revoke_api_key
from dunning.admin.models import ROLES
from dunning.db import session_scope
from dunning.startup import setup

keys_app = typer.Typer(help="API keys for the admin and finance APIs.", no_args_is_help=True)


@keys_app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="unique name, shown in the audit log")],
    role: Annotated[str, typer.Option(help=f"one of: {', '.join(ROLES)}")],
) -> None:
    """Create a key and print it once: only its hash is stored."""
    setup()
    try:
        with session_scope() as session:
            key = create_api_key(session, name, role)
    except ApiKeyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(key)
    typer.echo(f"{role} key {name!r} created; store it now, it cannot be shown again", err=True)


@keys_app.command("list")
def list_() -> None:
    """Every key with its role, display prefix and state."""
    setup()
    with session_scope() as session:
        keys = list_api_keys(session)
    if not keys:
        typer.echo("no API keys (create one with: dunning keys create NAME --role ops)")
        return
    typer.echo(f"{'name':<24} {'role':<8} {'prefix':<24} {'created (UTC)':<17} state")
    for k in keys:
        state = (
            "active"
            if k.revoked_at is None
            else f"revoked {k.revoked_at.astimezone(UTC):%Y-%m-%d %H:%M}"
        )
        created = f"{k.created_at.astimezone(UTC):%Y-%m-%d %H:%M}"
        typer.echo(f"{k.name:<24} {k.role:<8} {k.key_prefix + '…':<24} {created:<17} {state}")


@keys_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="the key's name")]) -> None:
    """Revoke a key; requests with it get 401 from then on."""
    setup()
    try:
        with session_scope() as session:
            changed = revoke_api_key(session, name)
    except ApiKeyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"key {name!r} revoked" if changed else f"key {name!r} was already revoked")
