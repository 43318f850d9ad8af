"""``POST /api/policies/preview`` on the real web app: the time line has the emails, the
wait in words, and one row per step."""

from __future__ import annotations

from collections import Counter

import httpx

from tests.support.admin import bearer, make_key
from tests.support.servers import WebServer
from tests.test_policy_timeline import POLICY


def test_the_preview_api_puts_the_emails_and_the_wait_on_one_time_line(web: WebServer) -> None:
    key = make_key("finance", "preview-reader")
    answer = httpx.post(
        f"{web.url}/api/policies/preview",
        json={
            "source": POLICY,
            "decline_code": "stolen_card",
            "time_zone": "America/New_York",
            "failed_at": "2025-03-03T14:00:00Z",
        },
        headers=bearer(key),
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    rows = body["timeline"]
    assert [r["kind"] for r in rows] == ["wait_for_card", *["email"] * 4, "give_up"]
    wait = rows[0]
    assert wait["at_utc"] == "2025-03-03T14:00:00Z"
    assert wait["until_utc"] == "2025-03-17T14:00:00Z"
    assert "waits for a new card until Mon 2025-03-17 10:00 EDT" in wait["what"]
    assert [r["template"] for r in rows if r["kind"] == "email"] == [
        "payment_failed",
        "payment_reminder",
        "payment_reminder",
        "final_notice",
    ]
    assert rows[1]["at_local"] == "2025-03-03T09:00:00-05:00"
    assert max(Counter((r["kind"], r["at_utc"]) for r in rows).values()) == 1
    # The engine's own decisions are still there, as they were made.
    assert [d["kind"] for d in body["decisions"]] == ["wait_for_card", "give_up"]
