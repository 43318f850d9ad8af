"""Storing raw events: one multi-row insert whose unique key drops duplicates."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

INSERT_EVENTS_SQL = """
INSERT INTO processor_events
    (processor, event_id, type, livemode, processor_created, body, headers, source, object_id)
SELECT * FROM unnest(
    %s::text[], %s::text[], %s::text[], %s::bool[],
    %s::bigint[], %s::text[], %s::jsonb[], %s::text[], %s::text[]
)
ON CONFLICT (processor, event_id) DO NOTHING
RETURNING id, event_id
"""


class MalformedEvent(ValueError):
    """The body is not a processor event."""


@dataclass(frozen=True)
class IncomingEvent:
    """A raw event as received, ready to store."""

    event_id: str
    type: str
    livemode: bool | None
    created: int | None
    body: str
    headers: dict[str, str]
    source: str = "webhook"
    processor: str = "stripe"
    object_id: str | None = None


def parse_event(body: bytes, headers: dict[str, str], source: str = "webhook") -> IncomingEvent:
    """Check that ``body`` is a JSON event with an id and a type; keep it verbatim."""
    try:
        text = body.decode("utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedEvent(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedEvent("body is not a JSON object")
    event_id, event_type = data.get("id"), data.get("type")
    if not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
        raise MalformedEvent("event has no id or type")
    if not isinstance(data.get("data"), dict) or not isinstance(data["data"].get("object"), dict):
        raise MalformedEvent("event has no data.object")
    created = data.get("created")
    object_id = data["data"]["object"].get("id")
    return IncomingEvent(
        event_id=event_id,
        type=event_type,
        livemode=data.get("livemode") if isinstance(data.get("livemode"), bool) else None,
        created=created if isinstance(created, int) else None,
        body=text,
        headers=headers,
        source=source,
        object_id=object_id if isinstance(object_id, str) else None,
    )


def insert_params(events: list[IncomingEvent]) -> tuple[list[Any], ...]:
    """Column arrays for ``INSERT_EVENTS_SQL``."""
    return (
        [e.processor for e in events],
        [e.event_id for e in events],
        [e.type for e in events],
        [e.livemode for e in events],
        [e.created for e in events],
        [e.body for e in events],
        [json.dumps(e.headers) for e in events],
        [e.source for e in events],
        [e.object_id for e in events],
    )
