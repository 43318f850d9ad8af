"""A preview request: which policy (inline, stored, or the active one) and a made-up
first failure, turned into the engine's simulated schedule.

Why apart from the engine's ``preview.simulate``: this part reads the store and checks
what a person typed (the time zone, inline text), which the pure engine never does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from dunning.policy.activation import current_activation
from dunning.policy.errors import InvalidRequest
from dunning.policy.models import Policy, parse_policy
from dunning.policy.preview import simulate
from dunning.policy.records import Attempt, Card, Decision
from dunning.policy.versions import StoredPolicy, get_policy
from dunning.timezones import UnknownTimeZone, parse_zone


@dataclass(frozen=True)
class Hypothetical:
    """A made-up first failure to preview a policy against."""

    decline_code: str | None = None
    failure_code: str | None = None
    advice_code: str | None = None
    network_advice_code: str | None = None
    network_decline_code: str | None = None
    card_brand: str | None = None
    amount: int = 4900
    currency: str = "usd"
    time_zone: str = "UTC"
    failed_at: datetime | None = None  # None: now; naive: UTC
    processor_retry_at: datetime | None = None  # Stripe's own retry of the invoice, if any
    backup_cards: int = 0  # other cards on file, for a policy that cascades to them


def as_utc(t: datetime) -> datetime:
    """An aware UTC instant; a naive time is taken as UTC."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def preview(policy: Policy, failure: Hypothetical) -> list[Decision]:
    """The schedule the engine would follow, every retry failing like the first.

    Raises ``InvalidRequest`` for an unknown time zone rather than letting the engine
    fall back to UTC: the zone was typed by a person, who should learn it is wrong.
    """
    try:
        parse_zone(failure.time_zone)
    except UnknownTimeZone as exc:
        raise InvalidRequest(str(exc)) from None
    at = as_utc(failure.failed_at or datetime.now(UTC))
    brand = failure.card_brand.lower() if failure.card_brand else None
    if not 0 <= failure.backup_cards <= 5:
        raise InvalidRequest("backup_cards must be between 0 and 5")
    cards = (
        [made_up_card(n, brand) for n in range(failure.backup_cards + 1)]
        if failure.backup_cards
        else []
    )
    first = Attempt(
        at=at,
        amount=failure.amount,
        currency=failure.currency.lower(),
        decline_code=failure.decline_code,
        failure_code=failure.failure_code,
        network_decline_code=failure.network_decline_code,
        advice_code=failure.advice_code,
        network_advice_code=failure.network_advice_code,
        card_brand=brand,
        card_fingerprint=cards[0].fingerprint if cards else None,
    )
    processor_retry = failure.processor_retry_at
    return simulate(
        policy,
        first,
        time_zone=failure.time_zone,
        card_brand=brand,
        processor_retry_at=as_utc(processor_retry) if processor_retry else None,
        cards=cards,
    )


def made_up_card(n: int, brand: str | None) -> Card:
    """Card ``n`` of a preview: 0 is the one charged, the others are backups."""
    name = "card on file" if n == 0 else f"backup card {n}"
    return Card(name, fingerprint=f"preview-{n}", brand=brand, last4=f"{n:04d}")


def policy_to_preview(
    session: Session,
    *,
    name: str | None = None,
    version: int | None = None,
    source: str | None = None,
) -> tuple[StoredPolicy | None, Policy]:
    """Inline text (not stored), a stored version, or else the active policy."""
    if source is not None:
        if name is not None or version is not None:
            raise InvalidRequest("give either an inline source or a name and version, not both")
        return None, parse_policy(source, source="(inline policy)")
    if name is None:
        if version is not None:
            raise InvalidRequest("a version needs a name")
        stored = current_activation(session).active
    else:
        stored = get_policy(session, name, version)
    return stored, stored.policy
