"""``/api/policies``: list, show, apply, activate, split and preview retry policies.

Thin on purpose: each endpoint opens one transaction and calls the same store function
as the ``dunning policy`` command, so the API and the CLI cannot disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from typing import Annotated, Any, Self

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, model_validator

from dunning.admin.auth import OpsActor, ReaderActor
from dunning.db import session_scope
from dunning.http import DbText, Instant, Version
from dunning.policy import activation, preview_request, store, versions
from dunning.policy.activation import Activation, PolicyStatus
from dunning.policy.errors import PolicyStoreError
from dunning.policy.models import Policy, PolicyError
from dunning.policy.records import Decision
from dunning.policy.schedule_view import Row, timeline
from dunning.policy.versions import StoredPolicy
from dunning.settings import Settings
from dunning.timezones import parse_zone

router = APIRouter(prefix="/api/policies", tags=["policies"])

MAX_POLICY_BYTES = 256 * 1024


class PolicyRef(BaseModel):
    id: int | None = Field(description="stored id; null for an inline policy")
    name: str
    version: int


class PolicySummary(BaseModel):
    id: int
    name: str
    version: int
    description: str
    created_at: datetime
    created_by: str
    status: PolicyStatus
    traffic_percent: int = Field(description="percent of customers whose new cases get it")


class PolicyDetail(PolicySummary):
    source: str = Field(description="the TOML text, verbatim")
    policy: Policy = Field(description="the validated policy")


class AppliedPolicy(PolicyDetail):
    created: bool = Field(description="false when this exact text was already stored")


class ActivationOut(BaseModel):
    active: PolicyRef
    split: PolicyRef | None
    split_percent: int
    updated_at: datetime
    updated_by: str


class SplitIn(BaseModel):
    """Arm B of an A/B test; ``percent`` 0 ends the test (name and version not needed)."""

    model_config = ConfigDict(extra="forbid")

    name: DbText | None = None
    version: Version | None = None
    percent: int = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _arm_named(self) -> Self:
        if self.percent > 0 and (self.name is None or self.version is None):
            raise ValueError("name and version are required unless percent is 0")
        return self


class PreviewIn(BaseModel):
    """A policy (stored name and version, inline ``source``, or by default the active one)
    and a hypothetical first failure."""

    model_config = ConfigDict(extra="forbid")

    name: DbText | None = None
    version: Version | None = None
    source: str | None = Field(default=None, description="policy TOML, not stored")
    decline_code: str | None = Field(default=None, examples=["insufficient_funds"])
    failure_code: str | None = Field(default=None, examples=["card_declined"])
    advice_code: str | None = None
    network_advice_code: str | None = None
    network_decline_code: str | None = None
    card_brand: str | None = Field(default=None, examples=["visa"])
    amount: int = Field(default=4900, gt=0, description="minor units")
    currency: str = Field(default="usd", min_length=3, max_length=3)
    time_zone: str = Field(default="UTC", examples=["America/New_York"])
    failed_at: Instant | None = Field(default=None, description="default now; naive is UTC")
    processor_retry_at: Instant | None = Field(
        default=None, description="when Stripe's own retry of the invoice is scheduled"
    )
    backup_cards: int = Field(
        default=0, ge=0, le=5, description="other cards on file (a policy's cascade uses them)"
    )


class DecisionOut(BaseModel):
    attempt_number: int
    kind: str
    at_utc: datetime | None
    at_local: datetime | None = Field(description="the same instant in the customer's zone")
    reason: str
    decline_class: str
    end_action: str | None
    card: str | None = Field(default=None, description="a retry on a backup card: which one")


class TimelineRowOut(BaseModel):
    """One step after the failure: a retry, a wait, the end of the case, or an email."""

    kind: str = Field(description="retry, wait_for_card, customer_action, give_up or email")
    at_utc: datetime = Field(description="when it happens (a wait: when it starts)")
    at_local: datetime = Field(description="the same instant in the customer's zone")
    what: str = Field(description="what happens, in words")
    reason: str | None = Field(description="the engine's reason, for retries, waits and the end")
    attempt_number: int | None = Field(description="a retry: the attempt it makes")
    template: str | None = Field(description="an email: its template")
    until_utc: datetime | None = Field(description="a wait: the case's deadline")


class PreviewOut(BaseModel):
    policy: PolicyRef
    time_zone: str
    failed_at_utc: datetime
    failed_at_local: datetime
    decisions: list[DecisionOut] = Field(description="the engine's decisions, as it made them")
    timeline: list[TimelineRowOut] = Field(
        description="retries, waits, the end and the emails in time order, one row per step"
    )


@contextmanager
def _http_errors() -> Iterator[None]:
    """Store and validation errors as HTTP answers (the transaction has rolled back)."""
    try:
        yield
    except PolicyError as exc:
        detail = {"message": "invalid retry policy", "problems": exc.problems}
        raise HTTPException(422, detail) from exc
    except PolicyStoreError as exc:
        raise HTTPException(exc.status, str(exc)) from exc


def _summary(p: StoredPolicy, act: Activation) -> dict[str, Any]:
    return {
        **p.ref(),
        "description": p.policy.description,
        "created_at": p.created_at,
        "created_by": p.created_by,
        "status": act.status(p.id),
        "traffic_percent": act.share(p.id),
    }


def _detail(p: StoredPolicy, act: Activation) -> dict[str, Any]:
    return {**_summary(p, act), "source": p.source, "policy": p.policy}


def _activation(act: Activation) -> ActivationOut:
    return ActivationOut(
        active=PolicyRef(**act.active.ref()),
        split=None if act.split is None else PolicyRef(**act.split.ref()),
        split_percent=act.split_percent,
        updated_at=act.updated_at,
        updated_by=act.updated_by,
    )


async def _policy_text(request: Request) -> str:
    """The TOML from a ``text/plain`` body or a JSON ``{"source": ...}`` body."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_POLICY_BYTES:
            raise HTTPException(413, f"policy larger than {MAX_POLICY_BYTES} bytes")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        raise HTTPException(
            415, "send the TOML as text/plain (curl --data-binary @file), or JSON {source}"
        )
    if kind == "application/json" or kind.endswith("+json"):
        try:
            data = json.loads(body)
        except ValueError:
            raise HTTPException(422, "body is not valid JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("source"), str):
            raise HTTPException(422, 'a JSON body must be {"source": "<policy TOML>"}')
        return str(data["source"])
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(422, "body is not UTF-8 text") from None


_TEXT_OR_JSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/plain": {"schema": {"type": "string", "description": "policy TOML"}},
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"source": {"type": "string", "description": "policy TOML"}},
                    "required": ["source"],
                }
            },
        },
    }
}


@router.get("")
def list_policies(actor: ReaderActor) -> list[PolicySummary]:
    """Every stored version, with which one is active and the A/B split."""
    with session_scope() as session:
        act = activation.current_activation(session)
        return [PolicySummary(**_summary(p, act)) for p in versions.list_policies(session)]


@router.get("/{name}/{version}")
def show_policy(name: DbText, version: Version, actor: ReaderActor) -> PolicyDetail:
    """One version: its TOML source, the validated policy, and its status."""
    with _http_errors(), session_scope() as session:
        act = activation.current_activation(session)
        return PolicyDetail(**_detail(versions.get_policy(session, name, version), act))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_TEXT_OR_JSON_BODY,
    responses={200: {"description": "this exact text was already stored"}},
)
def apply_policy(
    response: Response, actor: OpsActor, text: Annotated[str, Depends(_policy_text)]
) -> AppliedPolicy:
    """Store a new version (201), or nothing for text already stored (200).

    422 lists what is wrong with an invalid policy; 409 when the version exists with
    other text (versions are immutable: bump ``version``). Does not activate it.
    """
    with _http_errors(), session_scope() as session:
        stored = store.apply_policy(session, text, actor)
        act = activation.current_activation(session)
        if not stored.created:
            response.status_code = status.HTTP_200_OK
        return AppliedPolicy(**_detail(stored, act), created=stored.created)


@router.post("/{name}/{version}/activate")
def activate_policy(name: DbText, version: Version, actor: OpsActor) -> ActivationOut:
    """Make this version the one new cases get (also how to roll back); ends any split."""
    with _http_errors(), session_scope() as session:
        return _activation(activation.activate(session, name, version, actor))


@router.post("/split")
def split_policy(body: SplitIn, actor: OpsActor) -> ActivationOut:
    """Give ``percent`` % of customers another version (stable per customer); 0 ends it."""
    with _http_errors(), session_scope() as session:
        if body.percent == 0:
            return _activation(activation.clear_split(session, actor))
        assert body.name is not None and body.version is not None
        changed = activation.set_split(session, body.name, body.version, body.percent, actor)
        return _activation(changed)


def _decision(d: Decision, tz: tzinfo) -> DecisionOut:
    return DecisionOut(
        attempt_number=d.attempt_number,
        kind=d.kind.value,
        at_utc=d.at,
        at_local=None if d.at is None else d.at.astimezone(tz),
        reason=d.reason,
        decline_class=d.decline_class.value,
        end_action=None if d.end_action is None else d.end_action.value,
        card=d.card.label if d.card else None,
    )


def _row(r: Row, tz: tzinfo) -> TimelineRowOut:
    return TimelineRowOut(
        kind=r.kind.value,
        at_utc=r.at,
        at_local=r.at.astimezone(tz),
        what=r.what,
        reason=r.reason,
        attempt_number=r.attempt_number,
        template=r.template,
        until_utc=r.until,
    )


@router.post("/preview")
def preview_policy(body: PreviewIn, actor: ReaderActor, request: Request) -> PreviewOut:
    """The schedule a policy would follow after this failure, every retry failing alike:
    retries, waits, the end of the case and the emails, on one time line."""
    failed_at = preview_request.as_utc(body.failed_at or datetime.now(UTC))
    failure = preview_request.Hypothetical(
        **body.model_dump(exclude={"name", "version", "source", "failed_at"}), failed_at=failed_at
    )
    with _http_errors(), session_scope() as session:
        stored, policy = preview_request.policy_to_preview(
            session, name=body.name, version=body.version, source=body.source
        )
        decisions = preview_request.preview(policy, failure)
    tz = parse_zone(body.time_zone)  # checked by preview(): 422 when unknown
    settings: Settings = request.app.state.settings
    rows = timeline(
        policy,
        decisions,
        failed_at=failed_at,
        tz=tz,
        email_hours=(settings.email_hours_start, settings.email_hours_end),
    )
    return PreviewOut(
        policy=PolicyRef(
            id=None if stored is None else stored.id, name=policy.name, version=policy.version
        ),
        time_zone=tz.key,
        failed_at_utc=failed_at,
        failed_at_local=failed_at.astimezone(tz),
        decisions=[_decision(d, tz) for d in decisions],
        timeline=[_row(r, tz) for r in rows],
    )
