"""``/api/policies`` through the real web app, with API keys."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from dunning.policy.activation import DEFAULT_POLICY_FILE
from dunning.policy.models import load_policy
from dunning.policy.timing import is_payday
from tests.support.admin import bearer, make_key, policy_text, shipped_version
from tests.support.ledger import rows
from tests.support.servers import WebServer

P = "/api/policies"


@pytest.fixture
def ops(web: WebServer) -> httpx.Client:
    key = make_key("ops", "ops-api")
    return httpx.Client(base_url=web.url, headers=bearer(key), timeout=10)


@pytest.fixture
def finance(web: WebServer) -> httpx.Client:
    key = make_key("finance", "finance-api")
    return httpx.Client(base_url=web.url, headers=bearer(key), timeout=10)


V = shipped_version()  # the shipped default policy's version: installed first


def test_apply_list_show_over_http(ops: httpx.Client, finance: httpx.Client) -> None:
    text = policy_text(2)
    created = ops.post(P, content=text, headers={"Content-Type": "text/plain"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["version"], body["created"]) == ("default", V + 1, True)
    assert body["status"] == "inactive" and body["traffic_percent"] == 0
    assert body["source"] == text and body["policy"]["limits"]["max_attempts"] == 8

    again = ops.post(P, json={"source": text})
    assert again.status_code == 200 and again.json()["created"] is False

    listed = finance.get(P).json()
    assert [(p["name"], p["version"], p["status"]) for p in listed] == [
        ("default", V + 1, "inactive"),
        ("default", V, "active"),  # installed on first use
    ]
    shown = finance.get(f"{P}/default/{V}")
    assert shown.status_code == 200
    assert shown.json()["source"] == DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
    assert shown.json()["traffic_percent"] == 100
    assert finance.get(f"{P}/default/99").status_code == 404

    [apply] = rows(
        "SELECT actor, details FROM audit_log WHERE action = 'policy.apply' AND actor <> 'system'"
    )
    assert apply["actor"] == "ops-api" and apply["details"]["version"] == V + 1


def test_bad_policies_get_422_with_readable_problems(ops: httpx.Client) -> None:
    wrong = policy_text(2).replace("max_attempts = 8", "max_attempts = 0")
    wrong = wrong.replace('action = "wait_for_card"', 'action = "retry"', 1)
    answer = ops.post(P, content=wrong, headers={"Content-Type": "text/plain"})
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert detail["message"] == "invalid retry policy"
    assert any(p.startswith("limits.max_attempts:") for p in detail["problems"])
    assert "classes.hard: action 'retry' needs backoff_hours or payday = true" in detail["problems"]

    broken = ops.post(P, content="name = [", headers={"Content-Type": "text/plain"})
    assert broken.status_code == 422
    assert broken.json()["detail"]["problems"][0].startswith("not valid TOML")

    assert ops.post(P, json={"text": "x"}).status_code == 422
    form = ops.post(P, data={"source": "x"})
    assert form.status_code == 415 and "--data-binary" in form.json()["detail"]
    assert rows("SELECT id FROM retry_policies") == []


def test_a_changed_text_for_a_stored_version_is_a_conflict(ops: httpx.Client) -> None:
    assert ops.post(P, content=policy_text(2)).status_code == 201
    changed = ops.post(P, content=policy_text(2, max_attempts=6))
    assert changed.status_code == 409
    assert "bump `version`" in changed.json()["detail"]


def test_activate_and_split_over_http(ops: httpx.Client, finance: httpx.Client) -> None:
    ops.post(P, content=policy_text(2))
    ops.post(P, content=policy_text(3))
    activated = ops.post(f"{P}/default/{V + 1}/activate")
    assert activated.status_code == 200
    assert activated.json()["active"]["version"] == V + 1 and activated.json()["split"] is None

    split = ops.post(f"{P}/split", json={"name": "default", "version": V + 2, "percent": 25})
    assert split.status_code == 200
    assert split.json()["split"]["version"] == V + 2 and split.json()["split_percent"] == 25
    shares = {p["version"]: (p["status"], p["traffic_percent"]) for p in finance.get(P).json()}
    assert shares == {V + 2: ("split", 25), V + 1: ("active", 75), V: ("inactive", 0)}

    assert ops.post(f"{P}/split", json={"percent": 30}).status_code == 422  # which policy?
    on_active = {"name": "default", "version": V + 1, "percent": 5}
    assert ops.post(f"{P}/split", json=on_active).status_code == 409
    assert finance.post(f"{P}/split", json={"percent": 0}).status_code == 403
    cleared = ops.post(f"{P}/split", json={"percent": 0})
    assert cleared.status_code == 200 and cleared.json()["split"] is None
    assert ops.post(f"{P}/default/99/activate").status_code == 404

    by_ops = rows("SELECT action FROM audit_log WHERE actor = 'ops-api' ORDER BY id")
    actions = [r["action"] for r in by_ops]
    assert actions == [
        "policy.apply",
        "policy.apply",
        "policy.activate",
        "policy.split",
        "policy.split_clear",
    ]


def test_preview_puts_insufficient_funds_on_a_payday_in_retry_hours(
    finance: httpx.Client,
) -> None:
    answer = finance.post(
        f"{P}/preview",
        json={
            "decline_code": "insufficient_funds",
            "card_brand": "visa",
            "time_zone": "America/New_York",
            "failed_at": "2025-03-03T14:00:00Z",  # Monday 09:00 in New York
        },
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["policy"]["name"] == "default" and body["policy"]["version"] == V
    assert body["failed_at_local"] == "2025-03-03T09:00:00-05:00"
    first = body["decisions"][0]
    assert first["kind"] == "retry" and first["decline_class"] == "insufficient_funds"
    # default.toml: payday = true, at least 24 h later, paydays 1, 15, last business day
    # and Fridays, retries from 09:00 local: the next payday is Friday 2025-03-07.
    assert first["at_local"] == "2025-03-07T09:00:00-05:00"
    assert first["at_utc"] == "2025-03-07T14:00:00Z"
    timing = load_policy(DEFAULT_POLICY_FILE).timing
    assert is_payday(datetime.fromisoformat(first["at_local"]).date(), timing.paydays, timing)
    new_york = ZoneInfo("America/New_York")
    steps = body["decisions"]
    retries = [datetime.fromisoformat(d["at_local"]) for d in steps if d["kind"] == "retry"]
    for local in retries:
        assert timing.retry_hours.start <= local.hour < timing.retry_hours.end
        assert local.weekday() < 5 and local.utcoffset() == local.astimezone(new_york).utcoffset()
    # Paydays, spaced at least 24 h, then 5 and 10 days apart (default.toml).
    dates = [t.date().isoformat() for t in retries]
    assert dates == ["2025-03-07", "2025-03-14", "2025-03-28"]
    assert [d["kind"] for d in steps[-2:]] == ["wait_for_card", "give_up"]
    assert body["decisions"][-1]["kind"] == "give_up"
    assert body["decisions"][-1]["end_action"] == "cancel_subscription"


def test_preview_of_inline_or_stored_policies_and_bad_input(ops: httpx.Client) -> None:
    ops.post(P, content=policy_text(2, max_attempts=2))
    failure = {"decline_code": "processing_error", "failed_at": "2025-06-02T08:00:00"}
    stored = ops.post(f"{P}/preview", json={"name": "default", "version": V + 1, **failure})
    kinds = [d["kind"] for d in stored.json()["decisions"]]
    assert kinds == ["retry", "wait_for_card", "give_up"]  # attempts used: waits for a card
    stored = stored.json()
    assert stored["failed_at_utc"] == "2025-06-02T08:00:00Z"  # naive is UTC

    inline = ops.post(f"{P}/preview", json={"source": policy_text(5), **failure}).json()
    assert inline["policy"] == {"id": None, "name": "default", "version": V + 4}
    stored_inline = rows("SELECT version FROM retry_policies WHERE version = :v", v=V + 4)
    assert stored_inline == []  # not stored

    bad_zone = ops.post(f"{P}/preview", json={"time_zone": "Mars/Olympus", **failure})
    assert bad_zone.status_code == 422 and "unknown time zone" in bad_zone.json()["detail"]
    bad_policy = ops.post(f"{P}/preview", json={"source": "name = 'x'", **failure})
    assert bad_policy.status_code == 422 and bad_policy.json()["detail"]["problems"]
    both = ops.post(f"{P}/preview", json={"source": policy_text(5), "name": "default"})
    assert both.status_code == 422


def test_preview_names_the_backup_card_a_cascading_policy_retries_on(ops: httpx.Client) -> None:
    source = DEFAULT_POLICY_FILE.read_text(encoding="utf-8").replace(
        'action = "wait_for_card"\n\n[classes.card_data]',
        'action = "wait_for_card"\ncascade = true\n\n[classes.card_data]',
    )
    failure = {"decline_code": "stolen_card", "card_brand": "visa", "source": source}
    alone = ops.post(f"{P}/preview", json=failure).json()
    assert [d["kind"] for d in alone["decisions"]] == ["wait_for_card", "give_up"]
    assert "no usable backup card" in alone["decisions"][0]["reason"]
    two = ops.post(f"{P}/preview", json={**failure, "backup_cards": 2}).json()
    retries = [d for d in two["decisions"] if d["kind"] == "retry"]
    assert [d["card"] for d in retries] == [
        "visa •••• 0001 (backup card 1)",
        "visa •••• 0002 (backup card 2)",
    ]
    assert any("on the backup card visa •••• 0001" in r["what"] for r in two["timeline"])
    too_many = ops.post(f"{P}/preview", json={**failure, "backup_cards": 9})
    assert too_many.status_code == 422


def test_the_api_is_described_in_openapi(web: WebServer) -> None:
    spec = httpx.get(f"{web.url}/openapi.json", timeout=10).json()
    paths = spec["paths"]
    assert {"/api/policies", "/api/policies/{name}/{version}", "/api/policies/preview"} <= set(
        paths
    )
    assert "text/plain" in paths["/api/policies"]["post"]["requestBody"]["content"]
    assert {"PolicyDetail", "PreviewOut", "ActivationOut"} <= set(spec["components"]["schemas"])
    assert {"HTTPBearer", "APIKeyHeader"} <= set(spec["components"]["securitySchemes"])
