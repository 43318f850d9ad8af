"""The sweeper sends claimed actions in chunks: few broker messages, each action once,
each with its dispatch number (against real Postgres and Redis, no worker)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import redis

from dunning import queue
from dunning.db import session_scope
from dunning.scheduler import sweeper
from dunning.scheduler.models import ActionKind
from dunning.scheduler.schedule import upsert_action
from dunning.settings import get_settings
from tests.support.ledger import rows


def _due_actions(count: int, now: datetime) -> None:
    with session_scope() as session:
        for n in range(count):
            upsert_action(
                session,
                key=f"test:{n}",
                kind=ActionKind.SEND_EMAIL,
                due=now - timedelta(minutes=1),
                payload={},
                case_id=None,
                revive_any_canceled=False,
            )


def test_due_actions_go_out_in_chunks_with_their_dispatch_numbers(clean_db: None) -> None:
    broker = redis.Redis.from_url(str(get_settings().redis_url))
    broker.delete("celery")
    now = datetime.now(UTC)
    _due_actions(45, now)
    assert sweeper.sweep(now) == 45
    messages = [json.loads(raw) for raw in broker.lrange("celery", 0, -1)]
    assert len(messages) == 3  # 20 + 20 + 5, not 45
    sent: list[list[int]] = []
    for message in messages:
        assert message["headers"]["task"] == queue.RUN_ACTIONS
        args, _, _ = json.loads(base64.b64decode(message["body"]))
        sent.extend(args[0])
    assert sorted(action_id for action_id, _ in sent) == sorted({a for a, _ in sent})
    assert len(sent) == 45 and {dispatch for _, dispatch in sent} == {1}
    broker.delete("celery")


def test_the_sweep_leaves_due_actions_pending_while_the_broker_is_full(clean_db: None) -> None:
    """A renewal day's due emails wait in Postgres, not in the broker, where their
    leases would run out before a worker took them."""
    from workers.tasks import sweep_actions

    broker = redis.Redis.from_url(str(get_settings().redis_url))
    broker.delete("celery")
    now = datetime.now(UTC)
    _due_actions(30, now)
    full = queue.MAX_WAITING_ACTIONS // queue.DISPATCH_CHUNK
    broker.rpush("celery", *[b"waiting"] * (full - 1))  # room for one chunk
    try:
        assert sweep_actions() == queue.DISPATCH_CHUNK
        assert sweep_actions() == 0  # full now
        statuses = rows("SELECT status, count(*) AS n FROM scheduled_actions GROUP BY 1")
        assert {r["status"]: r["n"] for r in statuses} == {"claimed": 20, "pending": 10}
    finally:
        broker.delete("celery")
