"""The web application: webhook intake, health, and the APIs of the features."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
import psycopg
import redis
from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from dunning.backtest.routes import router as backtest_router
from dunning.cases.routes import router as cases_router
from dunning.console.routes import router as console_router
from dunning.db import libpq_url
from dunning.events.intake import GroupCommitter
from dunning.events.routes import WEBHOOK_PATH, stripe_webhook
from dunning.http import install_error_handlers
from dunning.links.routes import router as links_router
from dunning.notify.routes import router as emails_router
from dunning.notify.sms.routes import router as sms_router
from dunning.notify.sms.senders import warn_if_unconfigured as warn_if_no_sms
from dunning.policy.routes import router as policy_router
from dunning.reports.dashboard import router as dashboard_router
from dunning.reports.routes import router as reports_router
from dunning.settings import Settings, get_settings
from dunning.startup import settle_heap


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


# Swagger UI and ReDoc as files of an installed package (fastapi-offline), not from a CDN:
# a locked-down install without internet still has working API docs.
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS_ASSETS_URL = "/docs-assets"


def _offline_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` served with their scripts from this server."""
    app.mount(DOCS_ASSETS_URL, StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url
    favicon = f"{DOCS_ASSETS_URL}/favicon.png"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} · API docs",
            swagger_js_url=f"{DOCS_ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=favicon,
            oauth2_redirect_url=redirect_url,
            # No badge from the public validator service: the page makes no outside request.
            swagger_ui_parameters={"validatorUrl": None},
        )

    if redirect_url:

        @app.get(redirect_url, include_in_schema=False)
        async def swagger_ui_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} · API reference",
            redoc_js_url=f"{DOCS_ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )


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
    warn_if_no_sms(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        committer = GroupCommitter(libpq_url(database_url), max_batch=settings.ingest_batch_max)
        app.state.committer = committer
        await committer.start()
        yield
        await committer.stop()

    app = FastAPI(title="Dunning service", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    _offline_docs(app)
    install_error_handlers(app)
    app.include_router(policy_router)
    app.include_router(cases_router)
    app.include_router(reports_router)
    app.include_router(dashboard_router)
    app.include_router(links_router)
    app.include_router(emails_router)
    app.include_router(sms_router)
    app.include_router(backtest_router)
    app.include_router(console_router)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """200 only when the database, the broker and the webhook writers all work."""
        intake = app.state.committer.health()  # first: the checks below may take seconds
        database, broker = await asyncio.gather(
            _check_database(libpq_url(database_url)), asyncio.to_thread(_check_broker, redis_url)
        )
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


def serve_app() -> Service:
    """The app of one ``dunning web`` server process, its start-up objects left out of
    garbage collection (``startup.settle_heap``)."""
    app = create_app()
    settle_heap()
    return app
