"""Bad input on the admin API and the dashboard is a clean 4xx, never a 500.

Each request below answered 500 before the shared parameter types (``dunning.http``):
integers past ``bigint``/``integer``, NUL in text, dates the arithmetic overflows on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dunning.admin.keys import create_api_key
from dunning.db import session_scope
from tests.support.servers import WebServer

HUGE = [10**20, 2**63, 2**31]
JSON = {"Content-Type": "application/json"}
DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "config" / "policies" / "default.toml"


@pytest.fixture
def ops(web: WebServer) -> Iterator[httpx.Client]:
    with session_scope() as session:
        key = create_api_key(session, "ops-bad-input", "ops")
    with httpx.Client(base_url=web.url, headers={"X-API-Key": key}, timeout=15) as client:
        yield client


def _policy_text(version: int) -> str:
    """The default policy's TOML with another version number."""
    source = DEFAULT_POLICY.read_text(encoding="utf-8")
    changed, n = re.subn(r"(?m)^version = \d+$", f"version = {version}", source)
    assert n == 1
    return changed


BAD_REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    *[("GET", "/api/cases", {"params": {"offset": n}}) for n in HUGE[:2]],
    *[("GET", f"/api/cases/{n}", {}) for n in HUGE[:2]],
    *[("POST", f"/api/cases/{n}/{act}", {}) for n in HUGE[:2] for act in ("retry-now", "pause")],
    *[("GET", f"/api/policies/default/{n}", {}) for n in HUGE],
    *[("POST", f"/api/policies/default/{n}/activate", {}) for n in HUGE],
    *[
        ("POST", "/api/policies/split", {"json": {"name": "default", "version": n, "percent": 5}})
        for n in HUGE
    ],
    *[("POST", "/api/policies/preview", {"json": {"name": "default", "version": n}}) for n in HUGE],
    ("POST", "/api/policies", {"json": {"source": "<version 2**31>"}}),
    ("GET", "/api/cases", {"params": {"state": "open\x00"}}),
    ("GET", "/api/cases", {"params": {"customer": "cus_\x00"}}),
    ("GET", "/api/cases", {"params": {"decline_class": "\x00"}}),
    ("GET", "/api/reports/recovery", {"params": {"segment": "smb\x00"}}),
    ("GET", "/api/policies/de%00fault/1", {}),
    ("POST", "/api/policies/preview", {"json": {"name": "de\x00fault"}}),
    ("POST", "/api/policies/split", {"json": {"name": "\ud800", "version": 1, "percent": 5}}),
    *[
        ("POST", "/api/policies/preview", {"json": {"failed_at": t}})
        for t in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00")
    ],
    ("GET", "/api/cases", {"params": {"opened_from": "0001-01-01T00:00:00-12:00"}}),
    ("GET", "/dashboard/csv/recovery", {"params": {"from": "0001-01-01", "to": "9999-12-31"}}),
    ("GET", "/api/reports/monthly", {"params": {"from": "0001-01-01", "to": "9999-12-31"}}),
    ("GET", "/api/reports/at-risk/summary", {"params": {"as_of": "9999-12-31T23:59:59Z"}}),
    # A body that is not UTF-8: the 422 shows it replaced instead of failing to encode it.
    (
        "POST",
        "/api/policies/backtest",
        {"content": b"\x80", "headers": {"Content-Type": "text/plain"}},
    ),
]


def _id(request: tuple[str, str, dict[str, Any]]) -> str:
    method, path, kwargs = request
    return f"{method} {path} {kwargs}"[:90]


@pytest.mark.parametrize("request_", BAD_REQUESTS, ids=[_id(r) for r in BAD_REQUESTS])
def test_bad_values_are_a_clean_4xx(
    ops: httpx.Client, request_: tuple[str, str, dict[str, Any]]
) -> None:
    method, path, kwargs = request_
    if kwargs.get("json") == {"source": "<version 2**31>"}:
        kwargs = {"json": {"source": _policy_text(2**31)}}
    if "json" in kwargs:  # escaped, so lone surrogates reach the server as JSON allows
        kwargs = {"content": json.dumps(kwargs["json"]), "headers": JSON}
    answer = ops.request(method, path, **kwargs)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])


def test_the_largest_valid_values_still_work(ops: httpx.Client) -> None:
    assert ops.get("/api/cases", params={"offset": 2**63 - 1}).json() == []
    assert ops.get(f"/api/cases/{2**63 - 1}").status_code == 404
    assert ops.get(f"/api/policies/default/{2**31 - 1}").status_code == 404
    assert ops.get("/api/cases", params={"state": "open"}).status_code == 200
    period = {"from": "2024-01-01", "to": "2024-02-01"}
    assert ops.get("/dashboard", params=period).status_code == 200


def test_the_dashboard_takes_an_absurd_period_without_a_500(ops: httpx.Client) -> None:
    """The page may refuse the period (4xx) or show its default period with a notice."""
    answer = ops.get("/dashboard", params={"from": "0001-01-01", "to": "9999-12-31"})
    assert answer.status_code < 500, answer.text[:300]
