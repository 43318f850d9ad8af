"""Who may be texted: numbers in E.164, minus those that replied STOP (``sms_opt_outs``).

Replies are keyed by the number they came from, so the opt-out is per number, not per
customer: two customers sharing a phone both stop, as the person holding it asked.
The keywords are the ones carriers and Twilio honour on long codes.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dunning.db import table as core_table
from dunning.notify.models import SmsOptOut

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_WORDS = frozenset({"START", "YES", "UNSTOP"})
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SEPARATORS = re.compile(r"[\s\-().]")


def normalize_phone(raw: str | None) -> str | None:
    """``+15551234567`` from ``+1 (555) 123-4567`` or ``0015551234567``; None if not E.164.

    A national number (no country code) is refused rather than guessed at.
    """
    if not raw:
        return None
    phone = _SEPARATORS.sub("", raw)
    if phone.startswith("00"):
        phone = "+" + phone[2:]
    return phone if _E164.match(phone) else None


def keyword(body: str) -> bool | None:
    """True for an opt-out keyword, False for an opt-in one, None for anything else.

    The whole reply must be the keyword (any case, surrounding spaces and punctuation
    ignored): "stop." opts out, "don't stop" does not.
    """
    word = body.strip().strip(".!?,;:\"'").strip().upper()
    if word in STOP_WORDS:
        return True
    if word in START_WORDS:
        return False
    return None


def is_opted_out(session: Session, phone: str) -> bool:
    """Whether the number's latest reply was STOP (or a synonym)."""
    return bool(session.scalar(select(SmsOptOut.opted_out).where(SmsOptOut.phone == phone)))


def record_reply(
    session: Session, phone: str, opted_out: bool, message_id: str | None, now: datetime
) -> None:
    """Store the number's choice; the latest reply wins."""
    table = core_table(SmsOptOut)
    values = {"opted_out": opted_out, "changed_at": now, "message_id": message_id}
    session.execute(
        insert(table)
        .values(phone=phone, **values)
        .on_conflict_do_update(index_elements=[table.c.phone], set_=values)
    )
