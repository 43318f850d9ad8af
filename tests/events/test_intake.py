"""The group committer against real Postgres: no event can stop intake, a bad event
fails alone, and a request never waits past the deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

import httpx
import pytest

from dunning import queue
from dunning.app import create_app
from dunning.db import libpq_url
from dunning.events.intake import DatabaseUnavailable, GroupCommitter, UnstorableEvent
from dunning.events.store import IncomingEvent
from dunning.settings import get_settings
from tests.support.ledger import scalar
from tests.support.servers import ThrowawayRedis, WebServer
from tests.support.stripe_events import event, fixture, post
from tests.support.throwaway_pg import ThrowawayPostgres, service_database, throwaway_postgres

T = TypeVar("T")

GOOD = IncomingEvent(
    event_id="evt_good",
    type="customer.created",
    livemode=False,
    created=1_700_000_000,
    body="{}",
    headers={},
    object_id="cus_1",
)
# Values the table cannot hold, built directly: parse_event refuses them first, and the
# committer must still survive them if one ever slips through.
UNSTORABLE = {
    "lone surrogate in id": {"event_id": "evt_\ud800"},
    "NUL in id": {"event_id": "evt_\x00"},
    "id over 255": {"event_id": "evt_" + "x" * 300},
    "type over 128": {"type": "t" * 200},
    "created 10^20": {"created": 10**20},
}


def _run(coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
    """Run ``coro``; a hang (the old writer died silently) fails instead of blocking."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Event ids the committer hands to the workers (no broker needed here)."""
    ids: list[int] = []
    monkeypatch.setattr(queue, "send_apply_events", ids.extend)
    return ids


def test_a_writer_survives_any_exception(
    clean_db: None, database_url: str, sent: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        committer = GroupCommitter(libpq_url(database_url), writers=1)
        await committer.start()
        try:
            for n in range(2):  # two of them stopped all intake before
                with pytest.raises(UnstorableEvent):
                    await committer.submit(replace(GOOD, event_id=f"evt_{n}\ud800"))
            original = GroupCommitter._insert
            calls = iter([RuntimeError("a bug")])

            async def flaky(conn: Any, batch: Any) -> list[int]:
                error = next(calls, None)
                if error is not None:
                    raise error
                return await original(conn, batch)

            monkeypatch.setattr(GroupCommitter, "_insert", staticmethod(flaky))
            with pytest.raises(DatabaseUnavailable):
                await committer.submit(replace(GOOD, event_id="evt_unlucky"))
            assert await committer.submit(GOOD) is True
            assert await committer.submit(GOOD) is False
            assert committer.health() == "ok"
        finally:
            await committer.stop()

    _run(scenario())
    assert scalar("SELECT count(*) FROM processor_events") == 1
    assert len(sent) == 1


@pytest.mark.parametrize("bad", list(UNSTORABLE.values()), ids=list(UNSTORABLE))
def test_one_unstorable_event_fails_alone_in_its_batch(
    clean_db: None, database_url: str, sent: list[int], bad: dict[str, Any]
) -> None:
    async def scenario() -> list[bool | BaseException]:
        committer = GroupCommitter(libpq_url(database_url), writers=1)
        await committer.start()
        try:
            good = [committer.submit(replace(GOOD, event_id=f"evt_{n}")) for n in range(40)]
            poisoned = committer.submit(replace(GOOD, **{"event_id": "evt_bad", **bad}))
            # Submitted in one loop turn: the writer takes them as one batch.
            return await asyncio.gather(*good[:20], poisoned, *good[20:], return_exceptions=True)
        finally:
            await committer.stop()

    results = _run(scenario())
    assert isinstance(results.pop(20), UnstorableEvent)
    assert results == [True] * 40
    assert scalar("SELECT count(*) FROM processor_events") == 40
    assert len(sent) == 40


@pytest.fixture
def paused_db() -> Iterator[ThrowawayPostgres]:
    with throwaway_postgres() as server:
        yield server


def test_a_request_never_waits_past_the_deadline(
    paused_db: ThrowawayPostgres, sent: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(GroupCommitter, "deadline_seconds", 2.0)

    async def scenario() -> None:
        committer = GroupCommitter(paused_db.url)
        await committer.start()
        try:
            assert await committer.submit(GOOD) is True
            paused_db.pause()  # every connection hangs, as on a frozen host
            started = time.monotonic()
            waiting = asyncio.create_task(committer.submit(replace(GOOD, event_id="evt_2")))
            await asyncio.sleep(1.5)
            assert committer.health().startswith("stuck")
            with pytest.raises(DatabaseUnavailable):
                await waiting
            assert time.monotonic() - started < 3
            paused_db.resume()
            deadline = time.monotonic() + 10
            while True:  # the writer reconnects by itself
                try:
                    assert await committer.submit(replace(GOOD, event_id="evt_3")) is True
                    break
                except DatabaseUnavailable:
                    assert time.monotonic() < deadline
            assert committer.health() == "ok"
        finally:
            paused_db.resume()
            await committer.stop()

    _run(scenario(), timeout=60)


def test_a_frozen_database_answers_503_by_the_deadline_and_healthz_says_stuck(
    paused_db: ThrowawayPostgres, redis_server: ThrowawayRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real web app: no webhook waits forever, and ``/healthz`` tells while it lasts."""
    monkeypatch.setattr(GroupCommitter, "deadline_seconds", 2.0)
    secret = get_settings().stripe_webhook_secrets[0]
    payloads = [
        event("customer.created", fixture("customer"), event_id=f"evt_frozen_{n}") for n in range(3)
    ]
    with (
        service_database(paused_db.url),
        WebServer(create_app()) as web,
        httpx.Client(timeout=15) as client,
    ):
        assert post(web.url, payloads[0], secret=secret, client=client).status_code == 200
        paused_db.pause()
        try:
            with ThreadPoolExecutor(1) as pool:
                started = time.monotonic()
                waiting = pool.submit(post, web.url, payloads[1], secret=secret)
                time.sleep(1.2)
                health = client.get(f"{web.url}/healthz")
                assert waiting.result().status_code == 503
                assert time.monotonic() - started < 4
            assert health.status_code == 503
            assert health.json()["intake"].startswith("stuck")
        finally:
            paused_db.resume()
        answer = post(web.url, payloads[2], secret=secret, client=client)
        if answer.status_code == 503:  # the writer may still be dropping the frozen connection
            answer = post(web.url, payloads[2], secret=secret, client=client)
        assert answer.status_code == 200
        assert client.get(f"{web.url}/healthz").status_code == 200
