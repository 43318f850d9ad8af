"""Test session in tiers: pure tests need no server at all; the servers start on first use.

Importing this file starts nothing. It only fixes the settings every test shares, before
any project module reads them: the Redis URL (a Unix socket whose path is known before the
server runs, so a Celery app built at import time points at it), the webhook secrets and
the data folder. ``DUNNING_DATABASE_URL`` is removed, so a test that reaches the database
without asking for it fails loudly instead of using whatever the shell pointed at.

Tests that read or write the ledger ask for ``services`` (Postgres database built by the
migrations, plus the throwaway Redis): a directory's ``conftest.py`` does it for all its
tests, a module with ``pytestmark = pytest.mark.usefixtures("services")``. Stripe, the web
app and a Celery worker are the fixtures below.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.env import OLD_WEBHOOK_SECRET, WEBHOOK_SECRET

if TYPE_CHECKING:
    from tests.support.servers import ThrowawayRedis, WebServer
    from tests.support.smtp import Catcher

_TMP = Path(tempfile.mkdtemp(prefix="dunning-tests-"))
_REDIS_DIR = _TMP / "redis"

os.environ.setdefault("XDG_RUNTIME_DIR", str(_TMP))
os.environ.update(
    DUNNING_REDIS_URL=f"unix://{_REDIS_DIR / 'redis.sock'}",
    DUNNING_STRIPE_WEBHOOK_SECRETS=f"{WEBHOOK_SECRET},{OLD_WEBHOOK_SECRET}",
    DUNNING_DATA_DIR=str(_TMP / "data"),
)
for _key in ("DUNNING_DATABASE_URL", "DUNNING_STRIPE_API_KEY", "DUNNING_STRIPE_API_BASE"):
    os.environ.pop(_key, None)


def _reload_settings() -> None:
    """Settings are cached per process; drop the cache after changing the environment."""
    from dunning.settings import get_settings

    get_settings.cache_clear()


if "dunning.settings" in sys.modules:  # read by a plugin before this file ran
    _reload_settings()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the session folder, unless an embedded Postgres (still running) lives there."""
    if not (_TMP / "pg").exists():
        shutil.rmtree(_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database built by the migrations, on the machine's Postgres or an embedded one."""
    from dunning.db import get_engine
    from dunning.migrate import upgrade
    from tests.support import servers

    with servers.fresh_database(servers.postgres_server_url(_TMP / "pg")) as url:
        upgrade(url)
        os.environ["DUNNING_DATABASE_URL"] = url
        _reload_settings()
        try:
            yield url
        finally:
            get_engine().dispose()
            os.environ.pop("DUNNING_DATABASE_URL", None)
            _reload_settings()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[ThrowawayRedis]:
    """A private redis-server on the socket ``DUNNING_REDIS_URL`` already names."""
    from tests.support.servers import ThrowawayRedis

    server = ThrowawayRedis(_REDIS_DIR)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def services(database_url: str, redis_server: ThrowawayRedis) -> None:
    """The backing services of the service: what every ledger-touching test asks for."""


@pytest.fixture
def clean_db(services: None) -> Iterator[None]:
    """Empty every table before the test (end-to-end tests commit for real)."""
    from sqlalchemy import text

    from dunning.db import get_engine
    from dunning.models import Base

    names = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with get_engine().begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY"))
    yield


@pytest.fixture
def web(clean_db: None) -> Iterator[WebServer]:
    """The real web app on loopback."""
    from dunning.app import create_app
    from tests.support.servers import WebServer

    with WebServer(create_app()) as server:
        yield server


@pytest.fixture
def celery_worker(services: None) -> Iterator[object]:
    """A real Celery worker consuming from the test Redis, in a thread."""
    from celery.contrib.testing.worker import start_worker

    from workers.celery_app import app

    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=20) as worker:
        yield worker


@pytest.fixture(scope="session")
def stripe_base() -> Iterator[str]:
    """A localstripe server for the whole session."""
    from tests.support.servers import localstripe

    with localstripe() as base:
        yield base


@pytest.fixture
def processor(stripe_base: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the service's Stripe settings at an emptied sandbox for this test."""
    import httpx

    httpx.delete(f"{stripe_base}/_config/data").raise_for_status()
    monkeypatch.setenv("DUNNING_STRIPE_API_KEY", "sk_test_sandbox")
    monkeypatch.setenv("DUNNING_STRIPE_API_BASE", stripe_base)
    _reload_settings()
    yield stripe_base
    _reload_settings()


@pytest.fixture
def smtp() -> Iterator[Catcher]:
    """An SMTP server on a free loopback port, with the service's settings pointed at it."""
    from tests.support.smtp import smtp_catcher

    with smtp_catcher() as catcher:
        yield catcher
