"""Send one email action exactly once in effect (ARCHITECTURE rule 4).

1. Under the action's row lock: check the dispatch is current, compose the email from
   the ledger, and INSERT its notification row with the action's dedupe key
   (``ON CONFLICT DO NOTHING``). A row that is already ``sent`` (or ``failed``) ends
   the action: nothing is mailed again. Mark the action running, commit.
2. Send, outside any transaction.
3. Mark the notification ``sent`` with the provider's id; or, for a transient failure,
   put the action back in Postgres with a backoff (never a Celery ETA); or, for a
   permanent one, mark it ``failed`` with the error, which the case timeline shows.

A worker that dies between 2 and 3 leaves the action ``running`` with an earlier
``started_attempt``; the sweeper re-dispatches it when its lease expires. That send's
outcome is unknown. We send again, once per re-dispatch, with the *same* Message-ID
(and, for the HTTP provider, the same ``Idempotency-Key``), and record
``unknown_outcome_resends`` on the notification: a customer who never hears of a
failed payment costs far more than a rare duplicate, which most mail systems fold
together by Message-ID anyway.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dunning.db import session_scope
from dunning.db import table as core_table
from dunning.notify import hours
from dunning.notify.compose import Composed, NotNeeded, Undeliverable, compose
from dunning.notify.links import NoLinkTarget, update_url
from dunning.notify.models import Notification, NotificationStatus
from dunning.notify.render import EmailTemplateError, render_email
from dunning.notify.senders import (
    OutgoingEmail,
    SendError,
    TransientSendError,
    brand_from_settings,
    from_address,
    sender_from_settings,
)
from dunning.scheduler.models import ActionStatus, ScheduledAction
from dunning.settings import Settings, get_settings

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=6)


def run_email_action(action_id: int, dispatch: int, now: datetime) -> str:
    """Perform one dispatch of a ``send_email`` action; safe to call any number of times."""
    settings = get_settings()
    prepared = _claim(action_id, dispatch, now, settings)
    if isinstance(prepared, str):
        return prepared
    notification_id, email = prepared
    try:
        provider_id = sender_from_settings(settings).send(email)
    except TransientSendError as exc:
        return _postpone(action_id, notification_id, now, exc, settings)
    except SendError as exc:
        return _fail(action_id, notification_id, now, str(exc))
    return _sent(action_id, notification_id, provider_id, now)


def _claim(
    action_id: int, dispatch: int, now: datetime, settings: Settings
) -> str | tuple[int, OutgoingEmail]:
    """Step 1: an outcome when nothing must be sent, else the claimed row and the email."""
    with session_scope() as session:
        action = _lock_action(session, action_id)
        if action is None or action.status not in ActionStatus.LEASED:
            return "skipped: not leased"
        if action.attempts != dispatch or action.started_attempt == dispatch:
            return "skipped: stale or duplicate dispatch"
        try:
            composed = compose(session, action.payload, now, settings)
        except NotNeeded as exc:
            _finish(action, ActionStatus.CANCELED, f"not sent: {exc}", now)
            return f"canceled: {exc}"
        except Undeliverable as exc:
            _record_failure(session, action, None, str(exc), now)
            return f"failed: {exc}"
        if not hours.is_allowed(now, composed.time_zone, settings):
            action.status = ActionStatus.PENDING
            action.due_at = hours.next_allowed(now, composed.time_zone, settings)
            action.started_attempt = None
            action.lease_expires_at = None
            action.result = "moved into the customer's allowed hours"
            return "rescheduled: outside allowed hours"
        notification = _claim_row(session, action.dedupe_key, composed)
        if notification.status == NotificationStatus.SENT:
            _finish(action, ActionStatus.DONE, "already sent", now)
            return "skipped: already sent"
        if notification.status != NotificationStatus.CLAIMED:
            _finish(action, ActionStatus.FAILED, f"notification is {notification.status}", now)
            return f"skipped: notification {notification.status}"
        if action.started_attempt is not None:  # an earlier dispatch died mid-send
            resends = int(notification.details.get("unknown_outcome_resends", 0)) + 1
            notification.details = {**notification.details, "unknown_outcome_resends": resends}
            log.warning("resending notification %s after an unknown outcome", notification.id)
        try:
            email = _email(composed, notification, settings)
        except (EmailTemplateError, NoLinkTarget, ValueError) as exc:
            _record_failure(session, action, notification, f"cannot render: {exc}", now)
            return f"failed: {exc}"
        notification.attempts += 1
        action.status = ActionStatus.RUNNING
        action.started_attempt = dispatch
        return notification.id, email


def _claim_row(session: Session, key: str, composed: Composed) -> Notification:
    """INSERT the notification with its dedupe key, or find the one already there; locked."""
    table = core_table(Notification)
    session.execute(
        insert(table)
        .values(
            dedupe_key=key,
            kind=composed.kind,
            template=composed.template,
            locale=composed.locale,
            recipient=composed.recipient,
            case_id=composed.case_id,
            customer_id=composed.customer_id,
            subscription_id=composed.subscription_id,
            step=composed.step,
            status=NotificationStatus.CLAIMED,
        )
        .on_conflict_do_nothing(index_elements=[table.c.dedupe_key])
    )
    notification = session.execute(
        select(Notification).where(Notification.dedupe_key == key).with_for_update()
    ).scalar_one()
    session.refresh(notification)
    return notification


def _email(composed: Composed, notification: Notification, settings: Settings) -> OutgoingEmail:
    context = dict(composed.context)
    if composed.needs_link:
        context["update_url"] = update_url(
            composed.case_id, composed.customer_id, notification.id, settings
        )
    rendered = render_email(
        composed.template, composed.locale, context, brand=brand_from_settings(settings)
    )
    notification.locale = rendered.locale
    notification.details = {**notification.details, "subject": rendered.subject}
    return OutgoingEmail(
        to=composed.recipient,
        sender=from_address(settings),
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=message_id(notification.id, notification.dedupe_key, settings),
        reply_to=settings.support_email,
        tags=(("notification", str(notification.id)), ("template", composed.template)),
    )


def message_id(notification_id: int, key: str, settings: Settings) -> str:
    """Stable per notification, so every (re)send of it carries the same Message-ID."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    domain = settings.support_email.rpartition("@")[2] or "localhost"
    return f"<dunning.{notification_id}.{digest}@{domain}>"


def _sent(action_id: int, notification_id: int, provider_id: str, now: datetime) -> str:
    """Step 3: the provider accepted it. The row says so even if the action moved on."""
    with session_scope() as session:
        notification = _lock_notification(session, notification_id)
        notification.status = NotificationStatus.SENT
        notification.provider_id = provider_id[:255]
        notification.provider = get_settings().email_backend
        notification.sent_at = now
        notification.error = None
        action = _lock_action(session, action_id)
        if action is not None:
            _finish(action, ActionStatus.DONE, "sent", now)
    return "sent"


def _postpone(
    action_id: int, notification_id: int, now: datetime, exc: Exception, settings: Settings
) -> str:
    """A transient failure: try again later, from Postgres, inside the allowed hours."""
    with session_scope() as session:
        notification = _lock_notification(session, notification_id)
        action = _lock_action(session, action_id)
        if notification.status != NotificationStatus.CLAIMED or action is None:
            return "skipped: settled meanwhile"
        notification.error = f"transient: {exc}"
        if action.attempts >= settings.email_max_tries:
            notification.status = NotificationStatus.FAILED
            notification.error = f"gave up after {action.attempts} tries: {exc}"
            _finish(action, ActionStatus.FAILED, notification.error, now)
            return "failed: gave up"
        backoff = min(timedelta(minutes=2**action.attempts), MAX_BACKOFF)
        customer_tz = _recipient_zone(session, notification)
        action.status = ActionStatus.PENDING
        action.due_at = hours.next_allowed(now + backoff, customer_tz, settings)
        action.started_attempt = None  # the outcome is known: not sent
        action.lease_expires_at = None
        action.result = f"transient failure, retrying: {exc}"
        return "postponed"


def _fail(action_id: int, notification_id: int, now: datetime, error: str) -> str:
    """A permanent failure: recorded on the row (and so on the case), not retried."""
    with session_scope() as session:
        notification = _lock_notification(session, notification_id)
        action = _lock_action(session, action_id)
        if notification.status == NotificationStatus.SENT:
            return "skipped: sent meanwhile"
        notification.status = NotificationStatus.FAILED
        notification.error = error
        if action is not None:
            _finish(action, ActionStatus.FAILED, error, now)
    return f"failed: {error}"


def _record_failure(
    session: Session,
    action: ScheduledAction,
    notification: Notification | None,
    error: str,
    now: datetime,
) -> None:
    """A failure before any send (no address, no link): a failed row says why."""
    if notification is None:
        table = core_table(Notification)
        payload = action.payload
        session.execute(
            insert(table)
            .values(
                dedupe_key=action.dedupe_key,
                kind=str(payload.get("kind", "unknown")),
                template=str(payload.get("template", "unknown")),
                case_id=action.case_id,
                customer_id=payload.get("customer_id"),
                subscription_id=payload.get("subscription_id"),
                status=NotificationStatus.FAILED,
                error=error,
            )
            .on_conflict_do_nothing(index_elements=[table.c.dedupe_key])
        )
    elif notification.status == NotificationStatus.CLAIMED:
        notification.status = NotificationStatus.FAILED
        notification.error = error
    _finish(action, ActionStatus.FAILED, error, now)


def _recipient_zone(session: Session, notification: Notification) -> str | None:
    from dunning.ledger.models import Customer

    customer = session.get(Customer, notification.customer_id) if notification.customer_id else None
    return customer.time_zone if customer else None


def _lock_action(session: Session, action_id: int) -> ScheduledAction | None:
    return session.execute(
        select(ScheduledAction).where(ScheduledAction.id == action_id).with_for_update()
    ).scalar_one_or_none()


def _lock_notification(session: Session, notification_id: int) -> Notification:
    return session.execute(
        select(Notification).where(Notification.id == notification_id).with_for_update()
    ).scalar_one()


def _finish(action: ScheduledAction, status: str, result: str, now: datetime) -> None:
    action.status = status
    action.result = result
    action.completed_at = now
    action.lease_expires_at = None
