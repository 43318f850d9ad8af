"""The web application: webhook intake, health, and the APIs of the features."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import text

from dunning.cases.routes import router as cases_router
from dunning.db import get_engine, libpq_url
from dunning.events.intake import GroupCommitter
from dunning.events.routes import WEBHOOK_PATH, stripe_webhook
from dunning.links.routes import router as links_router
from dunning.notify.routes import router as emails_router
from dunning.policy.routes import router as policy_router
from dunning.reports.dashboard import router as dashboard_router
from dunning.reports.routes import router as reports_router
from dunning.settings import Settings, get_settings


def _check_database() -> str:
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
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
    app.include_router(policy_router)
    app.include_router(cases_router)
    app.include_router(reports_router)
    app.include_router(dashboard_router)
    app.include_router(links_router)
    app.include_router(emails_router)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        database, broker = await asyncio.gather(
            asyncio.to_thread(_check_database), asyncio.to_thread(_check_broker, redis_url)
        )
        ok = database == "ok" and broker == "ok"
        return JSONResponse(
            {"status": "ok" if ok else "degraded", "database": database, "broker": broker},
            status_code=200 if ok else 503,
        )

    return Service(app, settings)
