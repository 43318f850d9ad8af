"""Plan the emails (and texts) of a dunning case as scheduled actions (kind ``send_email``).

Each email is one row in ``scheduled_actions`` whose dedupe key is also the key of
its notification (``case:<id>:email:<step>``), so a step is planned, and sent, once
per case however often the case is re-planned. A policy step whose ``channels``
include ``sms`` is also texted, as its own action and notification
(``case:<id>:sms:<step>``, payload ``channel = "sms"``); a policy that texts any step
texts the final notice and the action-required notice too. Texts are planned even
when SMS is not configured: they are then recorded ``skipped``, with the reason.
``cases.service`` calls :func:`plan_case_emails` after every decision of the planner,
and :func:`on_case_closed` after closing a case (whose pending actions the planner
canceled) to plan the closing email (thank you). Due times are moved into the
customer's allowed hours here and checked again when the email is sent.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dunning.cases.models import CaseState, DunningCase
from dunning.ledger.queries import customer_time_zone
from dunning.notify import hours
from dunning.notify.models import NotificationKind
from dunning.notify.render import TEMPLATES, has_sms
from dunning.policy import store
from dunning.policy.declines import DeclineClass
from dunning.policy.records import Decision, DecisionKind
from dunning.scheduler.models import ActionKind, ActionStatus, ScheduledAction
from dunning.scheduler.schedule import cancel_pending_keys, flush_actions, upsert_action
from dunning.settings import Settings, get_settings

log = logging.getLogger(__name__)

# Notification kinds, by their short names here.
DUNNING = NotificationKind.DUNNING
RENEWAL = NotificationKind.RENEWAL
CARD_EXPIRING = NotificationKind.CARD_EXPIRING

# Step names besides the policy's numbered steps.
FINAL = "final"
ACTION_REQUIRED = "action_required"
RECOVERED = "recovered"
CANCELED = "canceled"

# Channels of a notice (``notifications.channel``, a policy step's ``channels``).
EMAIL = "email"
SMS = "sms"

_FALLBACK_STEP_TEMPLATE = "payment_reminder"
# Steps that came due together (the workers were down): only the latest goes out.
SUPERSEDED = "superseded by a later email"
_WARNED: set[str] = set()  # once per process, not on every re-plan


def emails_enabled(settings: Settings) -> bool:
    """Emails are planned only when there is a way to send them.

    Without SMTP or HTTP settings nothing could be delivered, so no rows are written
    (``dunning run``'s demo configures its local sink; production configures a relay).
    """
    if settings.email_backend == "http":
        return bool(settings.email_http_url and settings.email_http_token)
    return bool(settings.smtp_host)


def case_key(case_id: int, step: int | str, channel: str = EMAIL) -> str:
    """The dedupe key of a case email or text (action and notification)."""
    return f"case:{case_id}:{channel}:{step}"


def step_template(name: str) -> str:
    """The template of a policy step; an unknown name falls back to the reminder.

    A policy names templates freely, but a missing folder must not stop a case's
    emails: the step goes out as the generic reminder and the log says so.
    """
    if name in TEMPLATES:
        return name
    if name not in _WARNED:
        _WARNED.add(name)
        log.warning("policy email template %r does not exist; sending %r", name, "payment_reminder")
    return _FALLBACK_STEP_TEMPLATE


def sms_template(name: str) -> str:
    """The text message of a template; one without ``sms.txt`` texts the reminder's."""
    if has_sms(name):
        return name
    if f"sms:{name}" not in _WARNED:
        _WARNED.add(f"sms:{name}")
        log.warning("template %r has no sms.txt; texting %r", name, _FALLBACK_STEP_TEMPLATE)
    return _FALLBACK_STEP_TEMPLATE


def schedule_email(
    session: Session,
    key: str,
    due: datetime,
    payload: dict[str, Any],
    *,
    case_id: int | None = None,
) -> None:
    """Write (or move) the send action of one email; never touches a started or done one."""
    upsert_action(
        session,
        key=key,
        kind=ActionKind.SEND_EMAIL,
        due=due,
        payload=payload,
        case_id=case_id,
        revive_any_canceled=False,
    )


def plan_case_emails(
    session: Session, case: DunningCase, decision: Decision, now: datetime
) -> None:
    """Plan the policy's email steps, the final notice and, for an authentication
    decline, the action-required email, for an open case; and their texts."""
    settings = get_settings()
    if case.policy_id is None:
        return
    policy = store.policy_by_id(session, case.policy_id)
    texts = any(SMS in step.channels for step in policy.email_steps)
    channels = [c for c, on in ((EMAIL, emails_enabled(settings)), (SMS, texts)) if on]
    if not channels:
        return
    opened = case.opened_at
    end_at = opened + timedelta(days=policy.limits.max_days)
    # (step, due, payload, channels): the steps on their own channels, the rest on all.
    notices: list[tuple[int | str, datetime, dict[str, Any], tuple[str, ...]]] = []
    for index, step in enumerate(policy.email_steps):
        payload = {"template": step.template, "step": index, "day": step.day}
        notices.append((index, opened + timedelta(days=step.day), payload, step.channels))
    final_at = end_at - timedelta(days=policy.final_notice_days_before_end)
    final = {
        "template": "final_notice",
        "step": FINAL,
        "end_at": end_at.isoformat(),
        "end_action": policy.end_action.value,
    }
    notices.append((FINAL, final_at, final, (EMAIL, SMS)))
    if _needs_action_email(session, case, decision):
        action = {"template": "action_required", "step": ACTION_REQUIRED}
        notices.append((ACTION_REQUIRED, now, action, (EMAIL, SMS)))
    time_zone = _time_zone(session, case)
    for channel in channels:
        planned = [
            (case_key(case.id, step, channel), at, _for_channel(payload, channel))
            for step, at, payload, on in notices
            if channel in on
        ]
        _plan(session, case, planned, now, time_zone)


def _for_channel(payload: dict[str, Any], channel: str) -> dict[str, Any]:
    """The payload of one channel's action: the template that channel has, and the channel
    (emails carry none: ``compose`` reads a missing channel as email)."""
    if channel == SMS:
        return {**payload, "template": sms_template(payload["template"]), "channel": SMS}
    return {**payload, "template": step_template(payload["template"])}


def _plan(
    session: Session,
    case: DunningCase,
    planned: list[tuple[str, datetime, dict[str, Any]]],
    now: datetime,
    time_zone: str | None,
) -> None:
    """Schedule one channel's notices; of those already due, only the latest goes out."""
    planned.sort(key=lambda item: item[1])
    due_now = [key for key, at, _ in planned if at <= now]
    cancel_pending_keys(session, case.id, due_now[:-1], SUPERSEDED)
    for key, at, payload in planned:
        if key in due_now[:-1]:
            continue
        due = hours.next_allowed(max(at, now), time_zone, get_settings())
        schedule_email(
            session, key, due, {"kind": DUNNING, "case_id": case.id, **payload}, case_id=case.id
        )


def _needs_action_email(session: Session, case: DunningCase, decision: Decision) -> bool:
    """An authentication decline calls for the action-required email, unless it went
    out already (then the regular steps carry on, and nothing supersedes them)."""
    if decision.kind != DecisionKind.CUSTOMER_ACTION and (
        decision.decline_class != DeclineClass.AUTHENTICATION_REQUIRED
    ):
        return False
    flush_actions(session)
    status = session.scalar(
        select(ScheduledAction.status).where(
            ScheduledAction.dedupe_key == case_key(case.id, ACTION_REQUIRED)
        )
    )
    return status in (None, ActionStatus.PENDING, ActionStatus.CANCELED)


def on_case_closed(session: Session, case: DunningCase, now: datetime) -> None:
    """After a closed case's pending actions were canceled: plan its closing email.

    Recovered: a thank-you, but only when the customer was told about the failure
    (checked again at send time). Canceled by the end action: see :func:`on_end_action`.
    """
    if not emails_enabled(get_settings()) or case.state != CaseState.RECOVERED:
        return
    _closing_email(session, case, RECOVERED, "payment_recovered", now)


def on_end_action(session: Session, case: DunningCase, now: datetime) -> None:
    """The end action ran: a case it closed as canceled gets ``subscription_canceled``."""
    if emails_enabled(get_settings()) and case.state == CaseState.CANCELED:
        _closing_email(session, case, CANCELED, "subscription_canceled", now)


def _closing_email(
    session: Session, case: DunningCase, step: str, template: str, now: datetime
) -> None:
    due = hours.next_allowed(now, _time_zone(session, case), get_settings())
    payload = {"kind": DUNNING, "case_id": case.id, "template": template, "step": step}
    schedule_email(session, case_key(case.id, step), due, payload, case_id=case.id)


def _time_zone(session: Session, case: DunningCase) -> str | None:
    return customer_time_zone(session, case.customer_id)
