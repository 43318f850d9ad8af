"""Test session: a fresh Postgres database built by the migrations, a throwaway Redis,
and settings pointing at them. Tests that need Stripe, the web app or a Celery worker
ask for the fixtures below."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="dunning-tests-"))
os.environ.setdefault("XDG_RUNTIME_DIR", str(_TMP))

from tests.support import servers  # noqa: E402

WEBHOOK_SECRET = "whsec_test_current"
OLD_WEBHOOK_SECRET = "whsec_test_previous"


def _bootstrap() -> tuple[str, servers.ThrowawayRedis]:
    """Start the backing services before any project module reads the settings."""
    server_url = servers.postgres_server_url(_TMP / "pg")
    redis_server = servers.ThrowawayRedis(_TMP / "redis")
    redis_server.start()
    return server_url, redis_server


_PG_SERVER, _REDIS = _bootstrap()
_DB = servers.fresh_database(_PG_SERVER)
_DB_URL = _DB.__enter__()
os.environ.update(
    DUNNING_DATABASE_URL=_DB_URL,
    DUNNING_REDIS_URL=_REDIS.url,
    DUNNING_STRIPE_WEBHOOK_SECRETS=f"{WEBHOOK_SECRET},{OLD_WEBHOOK_SECRET}",
    DUNNING_DATA_DIR=str(_TMP / "data"),
)
for key in ("DUNNING_STRIPE_API_KEY", "DUNNING_STRIPE_API_BASE"):
    os.environ.pop(key, None)

from dunning.migrate import upgrade  # noqa: E402

upgrade(_DB_URL)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    from dunning.db import get_engine

    get_engine().dispose()
    _DB.__exit__(None, None, None)
    _REDIS.stop()


@pytest.fixture(scope="session")
def database_url() -> str:
    return _DB_URL


@pytest.fixture(scope="session")
def redis_server() -> servers.ThrowawayRedis:
    return _REDIS


@pytest.fixture
def clean_db() -> Iterator[None]:
    """Empty every table before the test (end-to-end tests commit for real)."""
    from sqlalchemy import text

    from dunning.db import get_engine
    from dunning.models import Base

    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with get_engine().begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
    yield


@pytest.fixture
def web(clean_db: None) -> Iterator[servers.WebServer]:
    """The real web app on loopback."""
    from dunning.app import create_app

    with servers.WebServer(create_app()) as server:
        yield server


@pytest.fixture
def celery_worker() -> Iterator[object]:
    """A real Celery worker consuming from the test Redis, in a thread."""
    from celery.contrib.testing.worker import start_worker

    from workers.celery_app import app

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20) as worker:
        yield worker


@pytest.fixture(scope="session")
def stripe_base() -> Iterator[str]:
    """A localstripe server for the whole session."""
    with servers.localstripe() as base:
        yield base


@pytest.fixture
def processor(stripe_base: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the service's Stripe settings at an emptied sandbox for this test."""
    import httpx

    from dunning.settings import get_settings

    httpx.delete(f"{stripe_base}/_config/data").raise_for_status()
    monkeypatch.setenv("DUNNING_STRIPE_API_KEY", "sk_test_sandbox")
    monkeypatch.setenv("DUNNING_STRIPE_API_BASE", stripe_base)
    get_settings.cache_clear()
    yield stripe_base
    get_settings.cache_clear()
