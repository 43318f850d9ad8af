"""The cases API and ops actions, against the real web app and database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from dunning.admin.keys import create_api_key
from dunning.db import session_scope
from tests.support.cases import case_row, fail_invoice
from tests.support.ledger import rows
from tests.support.servers import WebServer


@pytest.fixture
def keys(clean_db: None) -> dict[str, str]:
    with session_scope() as session:
        return {
            "ops": create_api_key(session, "ops-test", "ops"),
            "finance": create_api_key(session, "finance-test", "finance"),
        }


def _http(web: WebServer, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=web.url, headers=headers, timeout=10)


def test_cases_are_listed_filtered_and_shown_with_their_timeline(
    web: WebServer, keys: dict[str, str]
) -> None:
    now = int(datetime.now(UTC).timestamp())
    fail_invoice("in_a", created=now - 60)
    fail_invoice("in_b", created=now - 30, reason="stolen_card")
    assert _http(web, None).get("/api/cases").status_code == 401
    finance = _http(web, keys["finance"])
    listed = finance.get("/api/cases").json()
    assert [c["invoice_id"] for c in listed] == ["in_b", "in_a"]
    assert finance.get("/api/cases", params={"state": "recovered"}).json() == []
    hard = finance.get("/api/cases", params={"decline_class": "hard"}).json()
    assert [c["invoice_id"] for c in hard] == ["in_b"]
    detail = finance.get(f"/api/cases/{case_row('in_a')['id']}").json()
    assert [a["decline_code"] for a in detail["attempts"]] == ["insufficient_funds"]
    assert detail["decisions"][0]["kind"] == "retry" and detail["decisions"][0]["reason"]
    assert detail["actions"][0]["status"] == "pending"
    assert {e["type"] for e in detail["events"]} == {"charge.failed", "invoice.payment_failed"}
    assert finance.get("/api/cases/999999").status_code == 404


def test_retry_now_respects_the_network_rules_and_roles(
    web: WebServer, keys: dict[str, str]
) -> None:
    now = int(datetime.now(UTC).timestamp())
    fail_invoice("in_ok", created=now - 7200)
    fail_invoice("in_cat1", created=now - 7200, network_decline_code="04")
    ops = _http(web, keys["ops"])
    ok_id, cat1_id = case_row("in_ok")["id"], case_row("in_cat1")["id"]
    assert _http(web, keys["finance"]).post(f"/api/cases/{ok_id}/retry-now").status_code == 403
    assert ops.post(f"/api/cases/{ok_id}/retry-now").status_code == 200
    [due] = rows(
        "SELECT due_at FROM scheduled_actions WHERE case_id = :c AND status = 'pending'", c=ok_id
    )
    assert due["due_at"] <= datetime.now(UTC)
    refused = ops.post(f"/api/cases/{cat1_id}/retry-now")
    assert refused.status_code == 409 and "Visa" in refused.json()["detail"]
    audit = rows("SELECT actor, action, target_id FROM audit_log WHERE action LIKE 'case.%'")
    assert audit == [{"actor": "ops-test", "action": "case.retry_now", "target_id": str(ok_id)}]


def test_pause_resume_and_write_off(web: WebServer, keys: dict[str, str]) -> None:
    now = int(datetime.now(UTC).timestamp())
    fail_invoice("in_p", created=now - 60)
    ops = _http(web, keys["ops"])
    case_id = case_row("in_p")["id"]

    def pending() -> list[str]:
        return [
            r["dedupe_key"]
            for r in rows(
                "SELECT dedupe_key FROM scheduled_actions"
                " WHERE case_id = :c AND status = 'pending'",
                c=case_id,
            )
        ]

    assert pending() == [f"case:{case_id}:retry:2"]
    assert ops.post(f"/api/cases/{case_id}/pause").status_code == 200
    assert pending() == [] and case_row("in_p")["paused"] is True
    refused = ops.post(f"/api/cases/{case_id}/retry-now")  # a paused case is not charged
    assert refused.status_code == 409 and "paused" in refused.json()["detail"]
    again = ops.post(f"/api/cases/{case_id}/pause")
    assert again.status_code == 409 and "already paused" in again.json()["detail"]
    assert ops.post(f"/api/cases/{case_id}/resume").status_code == 200
    assert ops.post(f"/api/cases/{case_id}/resume").status_code == 409  # not paused
    assert pending() == [f"case:{case_id}:retry:2"]
    assert ops.post(f"/api/cases/{case_id}/write-off").status_code == 200
    assert pending() == [f"case:{case_id}:write-off"]
    actions = [
        r["action"]
        for r in rows("SELECT action FROM audit_log ORDER BY id")
        if r["action"].startswith("case.")
    ]
    assert actions == ["case.pause", "case.resume", "case.write_off"]
    second = ops.post(f"/api/cases/{case_id}/write-off")  # before the worker ran the first
    assert second.status_code == 409 and "already being written off" in second.json()["detail"]


def test_a_processor_retry_already_planned_is_not_doubled(clean_db: None) -> None:
    now = datetime.now(UTC)
    stripe_retry = now + timedelta(days=10)  # later than any retry the policy would plan
    fail_invoice(
        "in_smart", created=int(now.timestamp()) - 60, next_attempt=int(stripe_retry.timestamp())
    )
    [action] = rows("SELECT due_at FROM scheduled_actions WHERE status = 'pending'")
    assert action["due_at"] >= stripe_retry.replace(microsecond=0) + timedelta(hours=1)
    [decision] = rows("SELECT reason FROM case_decisions ORDER BY id DESC LIMIT 1")
    assert "processor's own retry" in decision["reason"]


def test_the_cases_commands_list_show_and_act(clean_db: None) -> None:
    from typer.testing import CliRunner

    from dunning.cli import app

    now = int(datetime.now(UTC).timestamp())
    fail_invoice("in_cli", created=now - 60)
    case_id = case_row("in_cli")["id"]
    runner = CliRunner()
    listed = runner.invoke(app, ["cases", "list", "--state", "open"])
    assert listed.exit_code == 0 and "cus_ops" in listed.output
    shown = runner.invoke(app, ["cases", "show", str(case_id)])
    assert shown.exit_code == 0
    assert "insufficient_funds" in shown.output and f"case:{case_id}:retry:2" in shown.output
    assert runner.invoke(app, ["cases", "pause", str(case_id)]).exit_code == 0
    assert case_row("in_cli")["paused"] is True
    refused = runner.invoke(app, ["cases", "pause", "999999"])
    assert refused.exit_code == 1 and "no case" in refused.output
    [audit] = rows("SELECT actor, action FROM audit_log WHERE action = 'case.pause'")
    assert audit["actor"].startswith("cli:")


def test_unknown_filter_values_are_refused_with_the_valid_ones(
    web: WebServer, keys: dict[str, str]
) -> None:
    finance = _http(web, keys["finance"])
    state = finance.get("/api/cases", params={"state": "bogus"})
    assert state.status_code == 422 and "'open'" in state.text
    klass = finance.get("/api/cases", params={"decline_class": "sometimes"})
    assert klass.status_code == 422 and "'insufficient_funds'" in klass.text
    assert finance.get("/api/cases", params={"state": "open"}).status_code == 200
