"""``POST /api/policies/backtest`` through the real web app: ops only, same figures."""

from __future__ import annotations

import httpx
import pytest

from dunning.backtest.service import SHIPPED_DEFAULT
from tests.support.admin import bearer, make_key
from tests.support.servers import WebServer

URL = "/api/policies/backtest"


@pytest.fixture
def ops(web: WebServer) -> httpx.Client:
    return httpx.Client(base_url=web.url, headers=bearer(make_key("ops", "bt-ops")), timeout=60)


def test_ops_runs_an_unapplied_policy_against_the_default(
    web: WebServer, ops: httpx.Client
) -> None:
    source = SHIPPED_DEFAULT.read_text(encoding="utf-8").replace("version = 2", "version = 9")
    body = {"source": source, "cases": 40, "seed": 3, "chart": True}
    answer = ops.post(URL, json=body)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    [world] = data["worlds"]
    names = [p["policy"] for p in world["policies"]]
    assert names[:2] == ["default v9", "default v2"] and "fixed +3/+5/+7/+14" in names
    assert (
        world["policies"][0]["recovered_amount_pct"] == world["policies"][1]["recovered_amount_pct"]
    )
    assert data["chart_svg"].startswith("<svg")
    again = ops.post(URL, json=body).json()
    assert again["worlds"][0]["policies"] == world["policies"]  # same seed, same figures

    finance = httpx.Client(base_url=web.url, headers=bearer(make_key("finance", "bt-fin")))
    assert finance.post(URL, json=body).status_code == 403
    assert httpx.post(f"{web.url}{URL}", json=body).status_code == 401
    bad = ops.post(URL, json={"source": "name = 1", "cases": 10})
    assert bad.status_code == 422 and bad.json()["detail"]["message"] == "invalid retry policy"
    assert ops.post(URL, json={"world": "../etc", "cases": 10}).status_code == 422
    assert ops.post(URL, json={"world": "nowhere", "cases": 10}).status_code == 404
    assert ops.post(URL, json={"cases": 10**6}).status_code == 422
