"""Signed events the event table can never hold, odd signature headers, and a writer that
stops: the real web app and Postgres answer 4xx or 503, and intake goes on."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from dunning.app import create_app
from dunning.events.signature import sign
from dunning.settings import get_settings
from tests.support.ledger import scalar
from tests.support.servers import WebServer
from tests.support.stripe_events import event, fixture, post


def _secret() -> str:
    return get_settings().stripe_webhook_secrets[0]


def _count() -> int:
    return int(scalar("SELECT count(*) FROM processor_events"))


def _good(n: int | str) -> dict[str, Any]:
    return event("customer.created", fixture("customer"), event_id=f"evt_good_{n}")


def _with(**fields: Any) -> bytes:
    payload = _good("bad")
    payload.update(fields)
    return json.dumps(payload).encode()  # ASCII escapes: "\ud800" stays a lone surrogate


def _object_id(value: str) -> bytes:
    payload = _good("bad")
    payload["data"]["object"]["id"] = value
    return json.dumps(payload).encode()


UNSTORABLE: dict[str, bytes] = {
    "id over 255 characters": _with(id="evt_" + "x" * 252),
    "NUL in id": _with(id="evt_\x00"),
    "lone surrogate in id": _with(id="evt_\ud800"),
    "created 10^20": _with(created=10**20),
    "created -10^20": _with(created=-(10**20)),
    "type over 128 characters": _with(type="customer." + "x" * 120),
    "NUL in type": _with(type="customer.\x00"),
    "lone surrogate in type": _with(type="\udfff"),
    "object id over 255": _object_id("cus_" + "x" * 300),
    "NUL in object id": _object_id("cus_\x00"),
    "5000-digit number": b'{"id": "evt_n", "type": "t", "n": ' + b"9" * 5000 + b"}",
    "deep nesting": b'{"id": "evt_d", "type": "t", "data": %s}' % (b"[" * 10**5 + b"]" * 10**5),
}


@pytest.mark.parametrize("body", list(UNSTORABLE.values()), ids=list(UNSTORABLE))
def test_signed_events_that_cannot_be_stored_answer_400(web: WebServer, body: bytes) -> None:
    answer = post(web.url, body, secret=_secret())
    assert answer.status_code == 400, answer.text
    assert post(web.url, _good(1), secret=_secret()).status_code == 200  # intake goes on
    assert _count() == 1


def test_a_body_that_is_not_utf8_answers_400(web: WebServer) -> None:
    """Stripe's SDK verifies the decoded text; undecodable bytes must not crash it."""
    body = b'{"id": "evt_\xff", "type": "t", "data": {"object": {}}}'
    assert post(web.url, body, secret=_secret()).status_code == 400
    assert _count() == 0


def test_one_bad_event_among_40_concurrent_good_ones(web: WebServer) -> None:
    bodies = [json.dumps(_good(n)).encode() for n in range(40)]
    bodies.insert(20, _with(id="evt_big_created", created=10**20))
    start = threading.Barrier(len(bodies))

    def send(body: bytes) -> int:
        with httpx.Client(timeout=15) as client:
            start.wait()
            return post(web.url, body, secret=_secret(), client=client).status_code

    with ThreadPoolExecutor(len(bodies)) as pool:
        statuses = list(pool.map(send, bodies))
    assert statuses.pop(20) == 400
    assert statuses == [200] * 40
    assert _count() == 40


@pytest.mark.parametrize(
    "header",
    [b"t=1,v1=\xff\xfe", "t=\u00e9,v1=00".encode("latin-1"), b"\x80", "sig=\u00ff".encode()],
)
def test_a_non_ascii_signature_header_answers_400(web: WebServer, header: bytes) -> None:
    body = json.dumps(_good(1)).encode()
    valid = sign(body, _secret()).encode()
    with httpx.Client(timeout=10) as client:
        for value in (header, valid + b"," + header):
            answer = client.post(
                f"{web.url}/webhooks/stripe", content=body, headers=[(b"Stripe-Signature", value)]
            )
            assert answer.status_code == 400, answer.text
    assert _count() == 0


def test_poisoned_events_do_not_stop_intake(web: WebServer) -> None:
    """Two events with a lone surrogate in their id used to kill both writer tasks."""
    for n in range(2):
        assert post(web.url, _with(id=f"evt_{n}\ud800"), secret=_secret()).status_code == 400
    with httpx.Client(timeout=15) as client:
        assert post(web.url, _good(1), secret=_secret(), client=client).status_code == 200
        health = client.get(f"{web.url}/healthz")
    assert health.status_code == 200, health.text
    assert _count() == 1


def test_healthz_reports_a_stopped_writer_and_intake_answers_503(clean_db: None) -> None:
    service = create_app()
    with WebServer(service) as web, httpx.Client(timeout=15) as client:
        tasks: list[asyncio.Task[None]] = service.api.state.committer._tasks
        stopped = threading.Event()

        def cancel() -> None:
            for task in tasks:
                task.cancel()
            stopped.set()

        tasks[0].get_loop().call_soon_threadsafe(cancel)
        assert stopped.wait(5)
        health = client.get(f"{web.url}/healthz")
        assert health.status_code == 503
        assert health.json()["intake"] == "writer stopped"
        assert post(web.url, _good(1), secret=_secret(), client=client).status_code == 503
