"""The handler of ``send_email`` actions: each email (or text) is sent once in effect.

The scheduler's runner calls it in three steps (docs/architecture.md):

1. ``prepare``, under the action's row lock: compose the email from the ledger, and
   INSERT its notification row with the action's dedupe key (``ON CONFLICT DO
   NOTHING``). A row that is already ``sent`` (or ``failed``) ends the action: nothing
   is mailed again. Outside the customer's allowed hours the action moves to the
   next allowed hour.
2. ``perform``: send, outside any transaction.
3. ``record``: mark the notification ``sent`` with the provider's id, or ``failed``
   with a permanent error, which the case timeline shows. A transient failure goes
   back to Postgres with a backoff inside the allowed hours (``postpone``), never a
   Celery ETA.

A worker that dies between 2 and 3 leaves the action ``running`` with an earlier
``started_attempt``; the sweeper re-dispatches it when its lease expires. That send's
outcome is unknown. We send again, once per re-dispatch, with the *same* Message-ID
(and, for the HTTP provider, the same ``Idempotency-Key``), and record
``unknown_outcome_resends`` on the notification: a customer who never hears of a
failed payment costs far more than a rare duplicate, which most mail systems fold
together by Message-ID anyway.

A text (``compose`` says ``channel = "sms"``) takes the same path on its own row
(``case:<id>:sms:<step>``), with the same hours, and Twilio as the sender. Twilio
has no idempotency key, so the claimed row is the only guard (a lost outcome is
texted again, as for email). Instead of a send, a text's row is marked ``skipped``,
with the reason, when SMS is not configured, the customer has no E.164 phone, or the
number replied STOP (``sms_opt_outs``, or Twilio's error 21610, which is then stored).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dunning.db import table as core_table
from dunning.ledger.queries import customer_time_zone
from dunning.notify import hours
from dunning.notify.compose import (
    AmountNotKnownYet,
    Composed,
    NotNeeded,
    Undeliverable,
    compose,
    prefetch,
)
from dunning.notify.links import NoLinkTarget, update_url
from dunning.notify.models import Notification, NotificationStatus
from dunning.notify.render import EmailTemplateError, render_email, render_sms
from dunning.notify.senders import (
    EmailSender,
    OutgoingEmail,
    SendError,
    TransientSendError,
    from_address,
    sender_from_settings,
)
from dunning.notify.sequence import EMAIL, SMS
from dunning.notify.sms import segments
from dunning.notify.sms.optouts import is_opted_out, record_reply
from dunning.notify.sms.senders import (
    OutgoingSms,
    RecipientOptedOut,
    not_configured,
    sms_backend,
    sms_sender_from_settings,
)
from dunning.scheduler.models import LEASED, ActionKind, ActionStatus, ScheduledAction
from dunning.scheduler.runner import Finish, NoLook, Perform, Reschedule, Step, backoff
from dunning.settings import Settings

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(hours=6)
# A case that opened without a known card fetches it at once (``cases.card_fetch``):
# its first email waits for that, polling, but never longer than WAIT_FOR_CARD.
CARD_POLL = timedelta(seconds=20)
WAIT_FOR_CARD = timedelta(minutes=3)
# A case opened from ``charge.failed`` before its ``invoice.payment_failed``: its first
# email waits for the invoice's amount (the webhook, else the reconciler, brings it),
# polling less often as time goes by, and fails after WAIT_FOR_AMOUNT.
WAIT_FOR_AMOUNT = timedelta(days=1)
MAX_AMOUNT_POLL = timedelta(minutes=30)


def _card_being_fetched(session: Session, case_id: int | None, now: datetime) -> bool:
    """Whether the case's charged card (and the customer with it) is being fetched."""
    if case_id is None:
        return False
    return bool(
        session.scalar(
            select(ScheduledAction.id).where(
                ScheduledAction.case_id == case_id,
                ScheduledAction.kind == ActionKind.FETCH_CARD,
                ScheduledAction.status.in_((*LEASED, ActionStatus.PENDING)),
                ScheduledAction.due_at > now - WAIT_FOR_CARD,
            )
        )
    )


@dataclass(frozen=True)
class EmailWork:
    """The claimed notification row and the rendered email or text."""

    notification_id: int
    message: OutgoingEmail | OutgoingSms


@dataclass(frozen=True)
class Refused:
    """The provider refused the email for good (for a text: perhaps as opted out)."""

    error: str
    opted_out: bool = False


class SendEmail(NoLook):
    """``send_email``: one email of a case, a renewal or a card-expiry notice."""

    kind = ActionKind.SEND_EMAIL
    transient: tuple[type[Exception], ...] = (TransientSendError,)

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._sender: EmailSender | None = None  # kept for the batch: one SMTP connection

    def close(self) -> None:
        """End the batch: let go of the email sender's connection."""
        if self._sender is not None:
            self._sender.close()
            self._sender = None

    def prefetch(self, session: Session, actions: list[ScheduledAction]) -> None:
        """A batch's ledger rows in a few queries, before each email is composed."""
        prefetch(session, [action.payload for action in actions])

    def prepare(self, session: Session, action: ScheduledAction, now: datetime) -> Step:
        settings = self.settings
        try:
            composed = compose(session, action.payload, now, settings)
        except NotNeeded as exc:
            if action.started_attempt is not None:  # a lost dispatch may have sent it
                _mark_unknown(session, action.dedupe_key)
            return Finish(ActionStatus.CANCELED, f"canceled: {exc}")
        except AmountNotKnownYet as exc:
            if now - exc.since < WAIT_FOR_AMOUNT:
                poll = min(max((now - exc.since) / 2, CARD_POLL), MAX_AMOUNT_POLL)
                return Reschedule(now + poll, "waiting for the invoice's amount")
            return _failed_before_send(session, action, None, str(exc))
        except Undeliverable as exc:
            # The fetch of the case's card also brings a customer the ledger has not
            # seen yet (it may run in the same batch, after this prepare).
            if _card_being_fetched(session, action.case_id, now):
                return Reschedule(now + CARD_POLL, "waiting for the card's details")
            return _failed_before_send(session, action, None, str(exc))
        if composed.channel == SMS and (reason := _no_text(session, composed, settings)):
            return _skipped(session, action, composed, reason)
        waits_for_card = composed.card_unknown and composed.channel == EMAIL
        if waits_for_card and _card_being_fetched(session, composed.case_id, now):
            return Reschedule(now + CARD_POLL, "waiting for the card's details")
        if not hours.is_allowed(now, composed.time_zone, settings):
            action.started_attempt = None
            due = hours.next_allowed(now, composed.time_zone, settings)
            return Reschedule(due, "outside allowed hours")
        notification = _claim_row(session, action.dedupe_key, composed)
        if notification.status == NotificationStatus.SENT:
            return Finish(ActionStatus.DONE, "skipped: already sent")
        if notification.status != NotificationStatus.CLAIMED:
            return Finish(ActionStatus.FAILED, f"skipped: notification {notification.status}")
        if action.started_attempt is not None:  # an earlier dispatch died mid-send
            resends = int(notification.details.get("unknown_outcome_resends", 0)) + 1
            notification.details = {**notification.details, "unknown_outcome_resends": resends}
            log.warning("resending notification %s after an unknown outcome", notification.id)
        render = _sms if composed.channel == SMS else _email
        try:
            message = render(composed, notification, settings)
        except (EmailTemplateError, NoLinkTarget, ValueError) as exc:
            return _failed_before_send(session, action, notification, f"cannot render: {exc}")
        notification.attempts += 1
        return Perform(EmailWork(notification.id, message))

    def perform(self, work: EmailWork) -> str | Refused:
        """The provider's message id, or why it refused the email for good."""
        try:
            if isinstance(work.message, OutgoingSms):
                return sms_sender_from_settings(self.settings).send(work.message)
            if self._sender is None:
                self._sender = sender_from_settings(self.settings)
            return self._sender.send(work.message)
        except TransientSendError:
            raise
        except SendError as exc:
            return Refused(str(exc), opted_out=isinstance(exc, RecipientOptedOut))

    def record(
        self,
        session: Session,
        action: ScheduledAction,
        work: EmailWork,
        outcome: str | Refused,
        now: datetime,
    ) -> Finish:
        notification = _lock_notification(session, work.notification_id)
        if isinstance(outcome, Refused):
            if notification.status == NotificationStatus.SENT:
                return Finish(ActionStatus.DONE, "skipped: sent meanwhile")
            if outcome.opted_out:  # STOP reached Twilio, not us: remember it here too
                record_reply(session, work.message.to, True, None, now)
                notification.status = NotificationStatus.SKIPPED
                notification.error = f"opted out at the provider: {outcome.error}"
                return Finish(ActionStatus.DONE, f"skipped: {notification.error}")
            notification.status = NotificationStatus.FAILED
            notification.error = outcome.error
            return Finish(ActionStatus.FAILED, f"failed: {outcome.error}")
        notification.status = NotificationStatus.SENT
        notification.provider_id = outcome[:255]
        texted = isinstance(work.message, OutgoingSms)
        backend = sms_backend(self.settings) if texted else self.settings.email_backend
        notification.provider = backend
        notification.sent_at = now
        notification.error = None
        return Finish(ActionStatus.DONE, "sent")

    def abandon(
        self, session: Session, action: ScheduledAction, now: datetime
    ) -> Finish | Reschedule:
        """Workers keep dying on it (perhaps after the send): its outcome is unknown."""
        _mark_unknown(session, action.dedupe_key)
        return Finish(ActionStatus.FAILED, "failed: its workers kept dying; outcome unknown")

    def postpone(
        self,
        session: Session,
        action: ScheduledAction,
        work: EmailWork,
        exc: Exception,
        now: datetime,
    ) -> Finish | Reschedule:
        """A transient failure: try again later, from Postgres, inside the allowed hours."""
        notification = _lock_notification(session, work.notification_id)
        if notification.status != NotificationStatus.CLAIMED:
            return Finish(ActionStatus.DONE, "skipped: settled meanwhile")
        notification.error = f"transient: {exc}"
        if action.attempts >= self.settings.email_max_tries:
            notification.status = NotificationStatus.FAILED
            notification.error = f"gave up after {action.attempts} tries: {exc}"
            return Finish(ActionStatus.FAILED, f"failed: {notification.error}")
        action.started_attempt = None  # the outcome is known: not sent
        zone = customer_time_zone(session, notification.customer_id)
        due = hours.next_allowed(now + backoff(action.attempts, MAX_BACKOFF), zone, self.settings)
        return Reschedule(due, f"transient failure, retrying: {exc}")


def _claim_row(session: Session, key: str, composed: Composed) -> Notification:
    """INSERT the notification with its dedupe key, or find the one already there; locked."""
    table = core_table(Notification)
    session.execute(
        insert(table)
        .values(
            dedupe_key=key,
            kind=composed.kind,
            channel=composed.channel,
            template=composed.template,
            locale=composed.locale,
            recipient=composed.recipient or None,
            case_id=composed.case_id,
            customer_id=composed.customer_id,
            subscription_id=composed.subscription_id,
            step=composed.step,
            status=NotificationStatus.CLAIMED,
        )
        .on_conflict_do_nothing(index_elements=[table.c.dedupe_key])
    )
    return session.execute(
        select(Notification)
        .where(Notification.dedupe_key == key)
        .with_for_update()
        .execution_options(populate_existing=True)  # as locked, not as read before
    ).scalar_one()


def _context(composed: Composed, notification: Notification, settings: Settings) -> dict[str, Any]:
    """The template's values, with the signed link for this notice when it has one."""
    context = dict(composed.context)
    if composed.needs_link:
        context["update_url"] = update_url(
            composed.case_id, composed.customer_id, notification.id, settings
        )
    return context


def _email(composed: Composed, notification: Notification, settings: Settings) -> OutgoingEmail:
    context = _context(composed, notification, settings)
    rendered = render_email(composed.template, composed.locale, context, brand=settings.branding())
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


def _sms(composed: Composed, notification: Notification, settings: Settings) -> OutgoingSms:
    """The text, with the same signed link as the email; its segments go in the details."""
    context = _context(composed, notification, settings)
    rendered = render_sms(composed.template, composed.locale, context, brand=settings.branding())
    notification.locale = rendered.locale
    counted = segments.count(rendered.text)
    notification.details = {
        **notification.details,
        "segments": counted.parts,
        "encoding": counted.encoding,
    }
    return OutgoingSms(to=composed.recipient, text=rendered.text)


def _no_text(session: Session, composed: Composed, settings: Settings) -> str | None:
    """Why this text must not go out (no SMS settings, no number, STOP), or None."""
    if sms_backend(settings) is None:
        return not_configured(settings)
    if not composed.recipient:
        return "the customer has no phone number in E.164 format (+15551234567)"
    if is_opted_out(session, composed.recipient):
        return f"{composed.recipient} opted out of SMS (replied STOP)"
    return None


def _skipped(session: Session, action: ScheduledAction, composed: Composed, reason: str) -> Finish:
    """A text decided against before any send: its row says skipped, and why."""
    notification = _claim_row(session, action.dedupe_key, composed)
    if notification.status == NotificationStatus.SENT:
        return Finish(ActionStatus.DONE, "skipped: already sent")
    if notification.status == NotificationStatus.CLAIMED:
        notification.status = NotificationStatus.SKIPPED
        notification.error = reason
    return Finish(ActionStatus.DONE, f"skipped: {reason}")


def message_id(notification_id: int, key: str, settings: Settings) -> str:
    """Stable per notification, so every (re)send of it carries the same Message-ID."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    domain = settings.support_email.rpartition("@")[2] or "localhost"
    return f"<dunning.{notification_id}.{digest}@{domain}>"


def _failed_before_send(
    session: Session,
    action: ScheduledAction,
    notification: Notification | None,
    error: str,
) -> Finish:
    """A failure before any send (no address, no link): a failed row says why."""
    if notification is None:
        table = core_table(Notification)
        payload = action.payload
        session.execute(
            insert(table)
            .values(
                dedupe_key=action.dedupe_key,
                kind=str(payload.get("kind", "unknown")),
                channel=str(payload.get("channel", EMAIL)),
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
    return Finish(ActionStatus.FAILED, f"failed: {error}")


def _mark_unknown(session: Session, key: str) -> None:
    """A claimed notification whose send may have happened: say so, not "claimed"."""
    session.execute(
        update(Notification)
        .where(Notification.dedupe_key == key, Notification.status == NotificationStatus.CLAIMED)
        .values(status=NotificationStatus.UNKNOWN, error="the worker died mid-send")
    )


def _lock_notification(session: Session, notification_id: int) -> Notification:
    return session.execute(
        select(Notification).where(Notification.id == notification_id).with_for_update()
    ).scalar_one()
