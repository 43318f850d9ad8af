"""Storing raw events: one multi-row insert whose unique key drops duplicates."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dunning.http import storable_text

# The arrays go in binary (%b): in text, psycopg escapes every body in Python, which cost
# 88 µs per event against 9 µs, a fifth of a webhook's CPU (bench/ingest.py).
INSERT_EVENTS_SQL = """
INSERT INTO processor_events
    (processor, event_id, type, livemode, processor_created, body, headers, source, object_id)
SELECT * FROM unnest(
    %b::text[], %b::text[], %b::text[], %b::bool[],
    %b::bigint[], %b::text[], %b::jsonb[], %b::text[], %b::text[]
)
ON CONFLICT (processor, event_id) DO NOTHING
RETURNING id, event_id
"""


# Column limits of ``processor_events`` (see ``dunning.events.models``).
MAX_EVENT_ID = 255
MAX_TYPE = 128
MAX_OBJECT_ID = 255
BIGINT = range(-(2**63), 2**63)


class MalformedEvent(ValueError):
    """The body is not a processor event, or not one the event table can hold."""


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


def _text_field(data: dict[str, Any], name: str, limit: int, *, required: bool) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        if required:
            raise MalformedEvent(f"event has no {name}")
        return None  # an optional field of another shape is not ours to keep
    if len(value) > limit:
        raise MalformedEvent(f"{name} is longer than {limit} characters")
    if not storable_text(value):
        raise MalformedEvent(f"{name} contains NUL or invalid Unicode")
    return value


def parse_event(body: bytes, headers: dict[str, str], source: str = "webhook") -> IncomingEvent:
    """Check that ``body`` is a JSON event that the event table can store; keep it verbatim.

    Everything that would make the insert fail is refused here, so a bad event answers
    400 on its own instead of failing the group commit it would have joined.
    """
    try:
        text = body.decode("utf-8")
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # bad UTF-8/JSON, 4300+ digit ints, deep nesting
        raise MalformedEvent(f"body is not JSON: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise MalformedEvent("body is not a JSON object")
    event_id = _text_field(data, "id", MAX_EVENT_ID, required=True)
    event_type = _text_field(data, "type", MAX_TYPE, required=True)
    assert event_id is not None and event_type is not None
    if not isinstance(data.get("data"), dict) or not isinstance(data["data"].get("object"), dict):
        raise MalformedEvent("event has no data.object")
    created = data.get("created")
    if isinstance(created, bool) or not isinstance(created, int):
        created = None
    elif created not in BIGINT:
        raise MalformedEvent("created is out of range")
    object_id = _text_field(data["data"]["object"], "id", MAX_OBJECT_ID, required=False)
    if not all(storable_text(k) and storable_text(v) for k, v in headers.items()):
        raise MalformedEvent("a header contains NUL")
    livemode = data.get("livemode")
    return IncomingEvent(
        event_id=event_id,
        type=event_type,
        livemode=livemode if isinstance(livemode, bool) else None,
        created=created,
        body=text,
        headers=headers,
        source=source,
        object_id=object_id,
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
