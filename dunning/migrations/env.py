"""Alembic environment: runs migrations under an advisory lock, so several
processes starting at once (release, web, worker) never migrate twice."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

from dunning.db import sqlalchemy_url
from dunning.models import Base

_LOCK_KEY = 7_340_211  # arbitrary, constant: "dunning migrations"


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url must be set by the caller"
    engine = create_engine(sqlalchemy_url(url))
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
        connection.commit()
        try:
            context.configure(connection=connection, target_metadata=Base.metadata)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
            connection.commit()
    engine.dispose()


run_migrations_online()
