"""Random bytes, huge numbers and odd Unicode sent to every route of the real web app
(real Postgres, real Redis): whatever arrives, nothing answers 5xx.

Routes are read from the app itself, so a route added later is covered without editing
this file. Each example fills the route's path, query and body parameters (by name,
from its signature) with hostile values, sometimes adds unknown ones, and sends it with
an ops key, a random key, or none.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_from_bytes

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from dunning.admin.keys import create_api_key
from dunning.app import Service, create_app
from dunning.db import session_scope
from dunning.events.routes import WEBHOOK_PATH
from dunning.events.signature import sign
from dunning.settings import get_settings
from tests.support.servers import WebServer

pytestmark = pytest.mark.usefixtures("services")

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    body_fields: tuple[str, ...]


def _fields(annotation: Any) -> tuple[str, ...]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return tuple(annotation.model_fields)
    return ()


def routes(service: Service) -> list[Route]:
    """Every FastAPI route of the app, with the names of its parameters."""
    found = []
    for context in iter_route_contexts(service.api.routes):
        dependant = getattr(context.original_route, "dependant", None)
        if dependant is None or context.path is None:
            continue  # the docs pages
        queries = [p.alias for p in dependant.query_params]
        for sub in dependant.dependencies:
            queries += [p.alias for p in sub.query_params]
        bodies = [f for p in dependant.body_params for f in _fields(p.field_info.annotation)]
        for method in sorted(context.methods or ()):
            found.append(
                Route(
                    method,
                    context.path,
                    tuple(p.alias for p in dependant.path_params),
                    tuple(queries),
                    tuple(bodies),
                )
            )
    return found


ODD = [
    "\x00", "\ud800", "\udfff", "\u202e", "\ufeff", "\uffff", "\U0010ffff", "e\u0301",
    "\U0001d54f", "../../etc/passwd", "%00", "' OR 1=1 --", "<script>", "\r\n", " ", "",
]  # fmt: skip
BIG = [
    2**31, 2**31 - 1, 2**63, 2**63 - 1, -(2**63) - 1, 10**20, -(10**20), 10**400, 0, -1,
]  # fmt: skip
text = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec=None, categories=["Cs", "Cc", "Cf", "Co", "Zs"]), max_size=8),
    st.sampled_from(ODD),
    st.lists(st.sampled_from(ODD), max_size=4).map("".join),
)
numbers = st.one_of(st.sampled_from(BIG), st.integers(), st.floats(allow_nan=True))
moments = st.sampled_from(
    [
        "0001-01-01", "9999-12-31", "0000-00-00", "2024-02-30", "1969-12-31",
        "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "2024-01-01T25:00:00",
        "1e400", "nan", "-0", "now",
    ]
) | st.dates().map(str) | st.datetimes().map(lambda d: d.isoformat())  # fmt: skip
scalar = st.one_of(text, numbers.map(str), moments)
json_value = st.recursive(
    st.none() | st.booleans() | numbers | text | moments,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)


def _encode(value: str) -> str:
    return quote_from_bytes(value.encode("utf-8", "surrogatepass"), safe="")


@st.composite
def requests(draw: st.DrawFn, route: Route, key: str) -> dict[str, Any]:
    """One hostile request for ``route``."""
    path = route.path
    for name in route.path_params:
        value = draw(scalar | st.binary(max_size=20).map(lambda b: b.decode("latin-1")))
        path = path.replace(f"{{{name}:path}}", _encode(value).replace("%2F", "/"))
        path = path.replace(f"{{{name}}}", _encode(value) or "x")
    names = list(route.query_params) + draw(st.lists(text, max_size=2))
    pairs = [(n, draw(scalar)) for n in names if draw(st.booleans())]
    query = "&".join(f"{_encode(n)}={_encode(v)}" for n, v in pairs)
    if draw(st.booleans()):
        query += "&" + quote_from_bytes(draw(st.binary(max_size=20)), safe="=&")
    keys = [key.encode()] * 3 + [b"", "dk_\u00e9".encode("latin-1"), b"x" * 300]
    headers: dict[str, Any] = {"X-API-Key": draw(st.sampled_from(keys))}
    body = b""
    if route.method in {"POST", "PUT", "PATCH"}:
        shape = draw(st.sampled_from(["fields", "json", "bytes", "form"]))
        if shape == "fields":
            payload = {f: draw(json_value) for f in route.body_fields if draw(st.booleans())}
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        elif shape == "json":
            body = json.dumps(draw(json_value)).encode()
            headers["Content-Type"] = "application/json"
        elif shape == "form":
            fields = {draw(text): draw(scalar) for _ in range(draw(st.integers(0, 3)))}
            body = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in fields.items()).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            body = draw(st.binary(max_size=200))
            headers["Content-Type"] = draw(
                st.sampled_from(["application/json", "text/plain", "application/octet-stream"])
            )
    return {
        "method": route.method,
        "url": path + (f"?{query}" if query else ""),
        "content": body,
        "headers": headers,
    }


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[WebServer, Service, str]]:
    with session_scope() as session:
        key = create_api_key(session, f"ops-fuzz-{uuid.uuid4().hex[:8]}", "ops")
    service = create_app()
    with WebServer(service) as web:
        yield web, service, key


def _send(web: WebServer, request: dict[str, Any]) -> httpx.Response:
    with httpx.Client(base_url=web.url, timeout=30) as client:
        return client.request(**request)


@FUZZ
@given(data=st.data())
def test_no_route_answers_5xx(server: tuple[WebServer, Service, str], data: st.DataObject) -> None:
    web, service, key = server
    route = data.draw(st.sampled_from(routes(service)), label="route")
    request = data.draw(requests(route, key), label="request")
    answer = _send(web, request)
    assert answer.status_code < 500, (route, request, answer.status_code, answer.text[:300])


def _or_hostile(valid: st.SearchStrategy[Any], limit: int) -> st.SearchStrategy[Any]:
    """Mostly a valid field, else anything: odd text, huge numbers, one past the column."""
    too_long = st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=limit + 1)
    return st.one_of(valid, valid, text, json_value, too_long.map(lambda t: t[: limit + 9]))


def _events() -> st.SearchStrategy[dict[str, Any]]:
    """Event envelopes close enough to real ones to reach the insert."""
    return st.fixed_dictionaries(
        {
            "id": _or_hostile(st.uuids().map(lambda u: f"evt_{u.hex}"), 255),
            "type": _or_hostile(st.just("customer.created"), 128),
            "created": st.one_of(st.integers(0, 2**32), st.sampled_from(BIG), json_value),
            "data": st.fixed_dictionaries(
                {"object": st.fixed_dictionaries({"id": _or_hostile(st.just("cus_1"), 255)})}
            )
            | json_value,
        },
        optional={"livemode": json_value},
    )


def _raw_post(web: WebServer, path: str, headers: dict[bytes, bytes], body: bytes) -> bytes:
    """POST over a bare socket, header bytes as given (HTTP clients refuse to send some);
    returns the status line."""
    head = b"".join(k + b": " + v + b"\r\n" for k, v in headers.items())
    request = (
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip
    with socket.create_connection(("127.0.0.1", web.port), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


@FUZZ
@given(
    body=st.one_of(st.binary(max_size=300), _events().map(lambda e: json.dumps(e).encode())),
    signed=st.booleans(),
    header=st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
)
def test_the_webhook_never_answers_5xx(
    server: tuple[WebServer, Service, str], body: bytes, signed: bool, header: bytes
) -> None:
    """Signed or not, any body, any signature bytes: 2xx or 4xx (503 is for a database
    that is down)."""
    web, _, _ = server
    secret = get_settings().stripe_webhook_secrets[0]
    value = (sign(body, secret) + ",").encode() + header if signed else header
    status = _raw_post(web, WEBHOOK_PATH, {b"Stripe-Signature": value}, body)
    assert status.split(b" ")[1][:1] in {b"2", b"4"}, (body[:200], value, status)
