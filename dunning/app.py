"""The web application: webhook intake, health, and the APIs of the features."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import redis
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from dunning.backtest.routes import router as backtest_router
from dunning.cases.routes import router as cases_router
from dunning.db import libpq_url
from dunning.events.intake import GroupCommitter
from dunning.events.routes import WEBHOOK_PATH, stripe_webhook
from dunning.http import install_error_handlers
from dunning.links.routes import router as links_router
from dunning.notify.routes import router as emails_router
from dunning.policy.routes import router as policy_router
from dunning.reports.dashboard import router as dashboard_router
from dunning.reports.routes import router as reports_router
from dunning.settings import Settings, get_settings


async def _check_database(dsn: str, timeout: float = 3) -> str:
    """A fresh connection and ``SELECT 1`` within ``timeout``: a hung server must not hang
    the health check (nor park a thread per probe, as a pooled sync check would)."""

    async def probe() -> None:
        conn = await psycopg.AsyncConnection.connect(dsn, connect_timeout=2, autocommit=True)
        try:
            await conn.execute("SELECT 1")
        finally:
            await conn.close()

    try:
        async with asyncio.timeout(timeout):
            await probe()
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def _check_broker(url: str) -> str:
    try:
        redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping()
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


class Service:
    """The ASGI entry point: the webhook path is served directly, the rest by FastAPI."""

    def __init__(self, api: FastAPI, settings: Settings) -> None:
        self.api = api
        self.settings = settings

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == WEBHOOK_PATH and scope["method"] == "POST":
            committer: GroupCommitter = self.api.state.committer
            await stripe_webhook(scope, receive, send, settings=self.settings, committer=committer)
            return
        await self.api(scope, receive, send)


def create_app(settings: Settings | None = None) -> Service:
    """Build the app; the event store's writer tasks live as long as the app."""
    settings = settings or get_settings()
    if not settings.database_url or not settings.redis_url:
        raise RuntimeError("DUNNING_DATABASE_URL and DUNNING_REDIS_URL must be set")
    database_url, redis_url = settings.database_url, settings.redis_url

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        committer = GroupCommitter(libpq_url(database_url), max_batch=settings.ingest_batch_max)
        app.state.committer = committer
        await committer.start()
        yield
        await committer.stop()

    app = FastAPI(title="Dunning service", lifespan=lifespan)
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(policy_router)
    app.include_router(cases_router)
    app.include_router(reports_router)
    app.include_router(dashboard_router)
    app.include_router(links_router)
    app.include_router(emails_router)
    app.include_router(backtest_router)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 only when the database, the broker and the webhook writers all work."""
        database, broker = await asyncio.gather(
            _check_database(libpq_url(database_url)), asyncio.to_thread(_check_broker, redis_url)
        )
        intake = app.state.committer.health()
        ok = database == broker == intake == "ok"
        return JSONResponse(
            {
                "status": "ok" if ok else "degraded",
                "database": database,
                "broker": broker,
                "intake": intake,
            },
            status_code=200 if ok else 503,
        )

    return Service(app, settings)
