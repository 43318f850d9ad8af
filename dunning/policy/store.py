"""The policy store's entry points: apply a new version, and which policy a case gets.

Versions live in ``versions``, the active choice and the A/B split in ``activation``;
this module is what the API, the CLI and the case planner call. Why apply lives here:
it checks the email templates and installs the default policy first, so a version
applied to an empty database never takes the default's place.
"""

from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session

from dunning.admin.actors import Actor
from dunning.policy.activation import Activation, current_activation
from dunning.policy.models import Policy, PolicyError, parse_policy
from dunning.policy.versions import StoredPolicy, get_policy_by_id, store_version
from dunning.templates import template_names


def apply_policy(
    session: Session, text: str, actor: Actor | str, *, origin: str = "(applied text)"
) -> StoredPolicy:
    """Validate and store a version (not activated); the identical text again is a no-op.

    Raises ``PolicyError`` (invalid; ``origin`` names the text in its message) or
    ``PolicyConflict`` (other text, same name and version). On an empty database the
    default policy is installed first, so a version applied there never takes its place.
    """
    policy = parse_policy(text, source=origin)
    _check_templates(policy, origin)
    current_activation(session)
    return store_version(session, policy, text, actor)


def _check_templates(policy: Policy, origin: str) -> None:
    """Every email step must name a template that exists, or ops would learn it from a log."""
    known = template_names()
    unknown = [
        f"email_steps.{i}.template: no email template {step.template!r} (known: {', '.join(known)})"
        for i, step in enumerate(policy.email_steps)
        if step.template not in known
    ]
    if unknown:
        raise PolicyError(origin, unknown)


# --- what the case planner asks --------------------------------------------------------


def split_bucket(customer_id: str, salt: str) -> int:
    """0..99 from SHA-256 of the salt and customer id: the same on every process and run."""
    digest = hashlib.sha256(f"{salt}\x00{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def in_split_arm(customer_id: str, split: StoredPolicy, percent: int) -> bool:
    """Whether a customer falls in the B arm; raising ``percent`` only adds customers."""
    return split_bucket(customer_id, f"{split.name}:{split.version}") < percent


def active_policy(session: Session) -> tuple[int, Policy]:
    """The active policy's id and model (the default policy on an empty database)."""
    active = current_activation(session).active
    return active.id, active.policy


def policy_for_customer(
    session: Session, customer_id: str | None, activation: Activation | None = None
) -> tuple[int, Policy]:
    """The policy a new case of this customer gets: the split arm for a stable
    ``split_percent`` % of customers, else the active one. Record the id on the case.
    ``activation``: the one the caller read already (a batch of cases reads it once)."""
    activation = activation or current_activation(session)
    split = activation.split
    if (
        split is not None
        and customer_id
        and in_split_arm(customer_id, split, activation.split_percent)
    ):
        return split.id, split.policy
    return activation.active.id, activation.active.policy


def policy_by_id(session: Session, policy_id: int) -> Policy:
    """The model of a stored version (a case keeps the policy it opened with). Versions
    never change, so each is read and parsed once per session (a batch of events)."""
    cache: dict[int, Policy] = session.info.setdefault("policies_by_id", {})
    if policy_id not in cache:
        cache[policy_id] = get_policy_by_id(session, policy_id).policy
    return cache[policy_id]
