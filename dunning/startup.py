"""What every ``dunning`` command does first: logging, settings, embedded services."""

from __future__ import annotations

import logging

import typer

from dunning.embedded import ensure_services
from dunning.migrate import upgrade
from dunning.settings import SettingsError, get_settings


def setup() -> dict[str, str]:
    """Validate settings and start embedded Postgres/Redis when no URLs are set.

    On the embedded database the schema is brought up to date too, so any command works
    on a fresh machine; a configured database is migrated by ``dunning migrate`` (the
    Procfile's release step). Returns the variables of the embedded services it filled in.
    """
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        get_settings()
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    started = ensure_services()
    get_settings.cache_clear()
    if "DUNNING_DATABASE_URL" in started:
        upgrade(started["DUNNING_DATABASE_URL"])
    return started
