"""A stopped Postgres: the admin API, the dashboard login, intake and ``/healthz`` answer
503 (retry later) instead of 500, and all recover without a restart.

The server here is a throwaway one that the test stops and starts, never the machine's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from dunning.admin.keys import create_api_key
from dunning.app import create_app
from dunning.db import session_scope
from dunning.settings import get_settings
from tests.support.servers import ThrowawayRedis, WebServer
from tests.support.stripe_events import event, fixture, post
from tests.support.throwaway_pg import ThrowawayPostgres, service_database, throwaway_postgres

_HIDDEN = re.compile(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"')


@pytest.fixture
def pg(redis_server: ThrowawayRedis) -> Iterator[ThrowawayPostgres]:
    with throwaway_postgres() as server, service_database(server.url):
        yield server


def _login(client: httpx.Client, key: str) -> httpx.Response:
    """Post the login form as a browser would, with whatever hidden fields it carries."""
    form = client.get("/dashboard/login")
    fields = dict(_HIDDEN.findall(form.text))
    return client.post("/dashboard/login", data={**fields, "key": key})


def test_a_stopped_database_is_503_everywhere_and_recovers(pg: ThrowawayPostgres) -> None:
    with session_scope() as session:
        key = create_api_key(session, "ops-outage", "ops")
    secret = get_settings().stripe_webhook_secrets[0]
    with (
        WebServer(create_app()) as web,
        httpx.Client(base_url=web.url, headers={"X-API-Key": key}, timeout=15) as api,
        httpx.Client(base_url=web.url, timeout=15) as browser,
    ):
        assert api.get("/api/cases").status_code == 200
        assert _login(browser, key).status_code == 303

        pg.stop()
        cases = api.get("/api/cases")
        assert cases.status_code == 503, cases.text
        assert cases.json() == {"detail": "the database is unavailable; retry later"}
        assert _login(httpx.Client(base_url=web.url, timeout=15), key).status_code == 503
        assert api.get("/dashboard").status_code == 503
        assert api.get("/api/policies").status_code == 503
        assert api.get("/healthz").json()["database"].startswith("error")
        payload = event("customer.created", fixture("customer"), event_id="evt_outage")
        assert post(web.url, payload, secret=secret).status_code == 503

        pg.start()
        assert api.get("/api/cases").status_code == 200
        assert post(web.url, payload, secret=secret).status_code == 200
        assert api.get("/healthz").status_code == 200
