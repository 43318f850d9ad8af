"""Stripe events built from Stripe's published example objects, signed with the real scheme."""

from __future__ import annotations

import copy
import json
import os
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx

from dunning.events.signature import sign

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(
    os.environ.get("DUNNING_STRIPE_FIXTURES", REPO.parent / "shared" / "stripe" / "fixtures3.json")
)


@lru_cache(maxsize=1)
def _resources() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURES.read_text())["resources"]
    return data


def fixture(name: str, **overrides: Any) -> dict[str, Any]:
    """A deep copy of Stripe's example object ``name`` with top-level fields replaced."""
    obj = copy.deepcopy(_resources()[name])
    obj.update(overrides)
    return obj


def event(
    event_type: str, obj: dict[str, Any], *, created: int | None = None, event_id: str | None = None
) -> dict[str, Any]:
    """An event envelope of the current API shape around ``obj``."""
    envelope = fixture("event")
    created = int(time.time()) if created is None else created
    envelope.update(
        id=event_id or f"evt_{obj.get('id', 'x')}_{event_type}_{created}",
        type=event_type,
        created=created,
        data={"object": obj},
    )
    return envelope


def post(
    base_url: str,
    payload: dict[str, Any] | bytes,
    *,
    secret: str,
    timestamp: int | None = None,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """POST an event to the webhook endpoint with a valid ``Stripe-Signature``."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {
        "Stripe-Signature": sign(body, secret, timestamp),
        "Content-Type": "application/json",
    }
    http = client or httpx.Client(timeout=10)
    return http.post(f"{base_url}/webhooks/stripe", content=body, headers=headers)
