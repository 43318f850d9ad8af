"""Database engine, sessions, and the after-commit hook for sending tasks.

Sessions commit or roll back in exactly one place (``session_scope``). Work that
must only happen once the transaction is durable, such as sending a Celery task
that refers to a new row, is registered with ``after_commit`` and dropped when the
transaction rolls back (docs/architecture.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Select,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    func,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from dunning.settings import get_settings

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    """Declarative base shared by every feature's models."""

    type_annotation_map = {datetime: DateTime(timezone=True)}


def table(model: Any) -> Table:
    """A mapped class's Core table, typed as such for Core statements."""
    return cast(Table, model.__table__)


def sqlalchemy_url(url: str) -> str:
    """Use the psycopg 3 driver whatever spelling of a Postgres URL was configured."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def libpq_url(url: str) -> str:
    """The same URL without the SQLAlchemy driver marker, for plain psycopg."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


# Plan every statement with its own parameters. Prepared statements otherwise settle on
# a generic plan made while a table was small (a sequential scan) and keep it as the
# table grows: a fresh ledger applying a renewal-day burst slowed from 560 to 270
# events/s within 10,000 events (bench/apply.py), and held 650-880 with this.
_CONNECT_ARGS = {"options": "-c plan_cache_mode=force_custom_plan"}


@cache
def engine_for(url: str) -> Engine:
    """One pooled engine per URL and process."""
    return create_engine(
        sqlalchemy_url(url),
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args=_CONNECT_ARGS,
    )


def get_engine() -> Engine:
    """The engine for the configured database."""
    url = get_settings().database_url
    if not url:
        raise RuntimeError("DUNNING_DATABASE_URL is not set (embedded services not started)")
    return engine_for(url)


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    """A session factory bound to ``engine`` (default: the configured one)."""
    return sessionmaker(bind=engine or get_engine(), expire_on_commit=False)


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once ``session``'s transaction commits; never if it rolls back."""
    pending: list[Callable[[], None]] = session.info.setdefault("after_commit", [])
    pending.append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for callback in session.info.pop("after_commit", []):
        try:
            callback()
        except Exception:  # the row is durable; the sweeper re-sends what was not sent
            log.exception("after-commit callback failed; the sweeper will retry")


@event.listens_for(Session, "after_rollback")
def _drop_after_rollback(session: Session) -> None:
    session.info.pop("after_commit", None)


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """One transaction: commit on success, roll back on error."""
    session = session_factory(engine)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


T = TypeVar("T")


def rounds(items: Iterable[T], key: Callable[[T], Hashable]) -> list[list[T]]:
    """Split ``items`` so that round n holds each key's n-th item, in their order: one
    statement run for many rows may touch a row only once, and what comes later for a
    row (or a case) must be written after what came before."""
    parts: list[list[T]] = []
    seen: dict[Hashable, int] = {}
    for item in items:
        k = key(item)
        n = seen[k] = seen.get(k, -1) + 1
        if n == len(parts):
            parts.append([])
        parts[n].append(item)
    return parts


def from_arrays(t: Table, keys: Sequence[str]) -> Select[Any]:
    """The rows of ``arrays(rows, keys)`` as a ``SELECT`` of ``keys`` (``unnest``), to insert
    many rows at once with a statement whose text does not depend on how many: psycopg
    parses a statement of over 50 parameters again each time (a multi-row ``VALUES`` of 50
    invoices has 800), and Postgres plans it again."""
    columns = [bindparam(f"a_{k}", type_=ARRAY(t.c[k].type)) for k in keys]
    rows = func.unnest(*columns).table_valued(*keys).render_derived()
    return select(*(rows.c[k] for k in keys))


def arrays(rows: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, list[Any]]:
    """The parameters of ``from_arrays``: one list per column."""
    listed = list(rows)
    return {f"a_{k}": [row[k] for row in listed] for k in keys}


def among(column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """``column IN (values)`` as ``column = ANY(array)``: one parameter however many
    values, so the statement's text is the same for every batch and psycopg and Postgres
    parse it once (``IN`` renders a parameter per value and changes with their number)."""
    return cast(ColumnElement[bool], column == any_(literal(list(values), ARRAY(column.type))))
