"""Apply one processor event to the ledger, by object state rather than arrival order.

Each snapshot upsert only wins over a stored row whose ``version`` (the event's
``created``) is not newer, and an invoice never leaves a final state except
``uncollectible -> paid``. Charge attempts are facts, so they are recorded whatever
order they arrive in, keyed by charge so a repeat changes nothing.

The ledger knows nothing of dunning cases: each function returns what changed, and
the caller (the event handler, a retry, the self-serve page) tells the cases.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dunning.db import among, arrays, from_arrays, rounds
from dunning.db import table as core_table
from dunning.ledger.locks import (
    lock_invoice,
    lock_invoices,
    lock_invoices_of_subscription,
    lock_payment_intent,
    lock_payment_intents,
)
from dunning.ledger.models import (
    ChargeAttempt,
    Customer,
    Invoice,
    InvoicePayment,
    PaymentMethod,
    Subscription,
    TriggeredBy,
)
from dunning.ledger.queries import attempt_from_charge, forget_reads
from dunning.processors import stripe_objects as so

# Invoice states in the order they can follow each other; a lower rank never
# overwrites a higher one at the same version, and final states stay final.
_INVOICE_RANK = {"unknown": 0, "draft": 1, "open": 2, "uncollectible": 3, "paid": 4, "void": 4}


def _upsert(session: Session, model: Any, values: dict[str, Any], version: int) -> None:
    """Insert or update a snapshot row unless the stored one is newer."""
    forget_reads(session)
    session.execute(_snapshot_upsert(model, tuple(values)), {**values, "version": version})


@cache
def _snapshot_upsert(model: Any, keys: tuple[str, ...]) -> Any:
    table = core_table(model)
    stmt = insert(table)
    changed: dict[str, Any] = {k: stmt.excluded[k] for k in keys if k != "id"}
    changed["version"] = stmt.excluded.version
    changed["updated_at"] = func.now()
    return stmt.on_conflict_do_update(
        index_elements=[table.c.id], set_=changed, where=table.c.version <= stmt.excluded.version
    )


def apply_customer(session: Session, obj: so.Obj, version: int, deleted: bool = False) -> None:
    rec = so.read_customer(obj)
    values = {
        "id": rec.id,
        "email": rec.email,
        "name": rec.name,
        "locale": rec.locale,
        "time_zone": rec.time_zone,
        "segment": rec.segment,
        "default_payment_method_id": rec.default_payment_method_id,
        "deleted": rec.deleted or deleted,
        "phone": rec.phone,
    }
    if deleted:  # a deleted customer stays deleted whatever older snapshot comes later
        _upsert(session, Customer, values, version=2**62)
    else:
        _upsert(session, Customer, values, version)


def apply_subscription(session: Session, obj: so.Obj, version: int) -> so.SubscriptionRecord:
    """Upsert a subscription snapshot; a cancellation first locks its invoices."""
    return apply_subscriptions(session, [(obj, version)])[0]


def apply_subscriptions(
    session: Session, snapshots: list[tuple[so.Obj, int]]
) -> list[so.SubscriptionRecord]:
    """Upsert subscription snapshots (object, version); cancellations first lock their
    invoices (lock order: invoice, then subscription, ``ledger.locks``)."""
    forget_reads(session)
    recs = [(so.read_subscription(obj), version) for obj, version in snapshots]
    for subscription_id in sorted({rec.id for rec, _ in recs if rec.status == "canceled"}):
        lock_invoices_of_subscription(session, subscription_id)
    for part in rounds(recs, lambda rv: rv[0].id):
        shapes: dict[bool, list[dict[str, Any]]] = {}
        for rec, version in part:
            row = _subscription_row(rec, version)
            shapes.setdefault("pause_behavior" in row, []).append(row)
        for pause, rows in shapes.items():
            session.execute(_subscription_upsert(pause), rows)
    return [rec for rec, _ in recs]


def _subscription_row(rec: so.SubscriptionRecord, version: int) -> dict[str, Any]:
    row = {
        "id": rec.id,
        "customer_id": rec.customer_id,
        "status": rec.status,
        "plan_id": rec.plan_id,
        "plan_name": rec.plan_name,
        "interval": rec.interval,
        "interval_count": rec.interval_count,
        "amount": rec.amount,
        "currency": rec.currency,
        "current_period_end": rec.current_period_end,
        "cancel_at_period_end": rec.cancel_at_period_end,
        "canceled_at": rec.canceled_at,
        "default_payment_method_id": rec.default_payment_method_id,
        "start_date": rec.start_date,
        "version": version,
    }
    if rec.says_pause:  # collection paused at Stripe (by our end action or by hand)
        row["pause_behavior"] = rec.pause_behavior
    return row


@cache
def _subscription_upsert(pause: bool) -> Any:
    """The subscription snapshot upsert (``pause``: the snapshot says its pause)."""
    table = core_table(Subscription)
    stmt = insert(table)
    keys = [c.name for c in table.c if c.name in _SUBSCRIPTION_SNAPSHOT]
    changed: dict[str, Any] = {k: stmt.excluded[k] for k in keys}
    if pause:
        changed["pause_behavior"] = stmt.excluded.pause_behavior
    changed["updated_at"] = func.now()
    # A canceled subscription is final: no older or same-second snapshot revives it.
    return stmt.on_conflict_do_update(
        index_elements=[table.c.id],
        set_=changed,
        where=and_(
            table.c.version <= stmt.excluded.version,
            or_(table.c.status != "canceled", stmt.excluded.status == "canceled"),
        ),
    )


# What a subscription snapshot overwrites.
_SUBSCRIPTION_SNAPSHOT = (
    "customer_id",
    "status",
    "plan_id",
    "plan_name",
    "interval",
    "interval_count",
    "amount",
    "currency",
    "current_period_end",
    "cancel_at_period_end",
    "canceled_at",
    "default_payment_method_id",
    "start_date",
    "version",
)


def apply_payment_method(
    session: Session, obj: so.Obj, version: int, *, detached: bool = False, network: bool = False
) -> None:
    rec = so.read_payment_method(obj)
    values: dict[str, Any] = {
        "id": rec.id,
        "customer_id": rec.customer_id,
        "brand": rec.brand,
        "last4": rec.last4,
        "exp_month": rec.exp_month,
        "exp_year": rec.exp_year,
        "fingerprint": rec.fingerprint,
        "detached": detached,
    }
    if detached:
        values.pop("customer_id")
    _upsert(session, PaymentMethod, values, version)
    if network:  # a fact of this event type: no newer snapshot of another type drops it
        table = core_table(PaymentMethod)
        at = datetime.fromtimestamp(version, tz=UTC)
        session.execute(
            update(table)
            .where(table.c.id == rec.id)
            .values(
                updated_by_network_at=func.greatest(
                    func.coalesce(table.c.updated_by_network_at, at), at
                )
            )
        )


def _invoice_may_change(table: Any, new_status: ColumnElement[Any], new_version: Any) -> Any:
    """Whether a snapshot may overwrite the stored invoice row."""
    old_rank = case(_INVOICE_RANK, value=table.c.status, else_=0)
    new_rank = case(_INVOICE_RANK, value=new_status, else_=0)
    final = or_(table.c.status == "paid", table.c.status == "void")  # no expanding IN: executemany
    return and_(
        ~final | (table.c.status == new_status),
        or_(
            table.c.version < new_version,
            and_(table.c.version == new_version, new_rank >= old_rank),
            and_(table.c.status == "uncollectible", new_status == "paid"),
        ),
    )


def apply_invoice(session: Session, obj: so.Obj, version: int) -> so.InvoiceRecord:
    """Upsert an invoice snapshot; return what the event said about it."""
    return apply_invoices(session, [(obj, version)])[0]


def apply_invoices(session: Session, snapshots: list[tuple[so.Obj, int]]) -> list[so.InvoiceRecord]:
    """Upsert invoice snapshots (object, version) in as few statements as rows allow."""
    forget_reads(session)
    recs = [(so.read_invoice(obj), version) for obj, version in snapshots]
    table = core_table(Invoice)
    for part in rounds(recs, lambda rv: rv[0].id):
        rows = [_invoice_row(rec, version) for rec, version in part]
        written = set(session.scalars(_invoice_upsert(), arrays(rows, _INVOICE_COLUMNS)))
        # A refused snapshot's attempt_count still counts, even from an older one.
        for rec, _ in part:
            if rec.id not in written:
                session.execute(
                    update(table)
                    .where(table.c.id == rec.id, table.c.attempt_count < rec.attempt_count)
                    .values(attempt_count=rec.attempt_count)
                )
    return [rec for rec, _ in recs]


@cache
def _invoice_upsert() -> Any:
    """The invoice snapshot upsert of many rows (``db.arrays``), returning the ids it wrote."""
    table = core_table(Invoice)
    stmt = insert(table).from_select(_INVOICE_COLUMNS, from_arrays(table, _INVOICE_COLUMNS))
    changed: dict[str, Any] = {name: stmt.excluded[name] for name in _INVOICE_SNAPSHOT}
    changed.update(
        updated_at=func.now(),
        attempt_count=func.greatest(table.c.attempt_count, stmt.excluded.attempt_count),
    )
    return stmt.on_conflict_do_update(
        index_elements=[table.c.id],
        set_=changed,
        where=_invoice_may_change(table, stmt.excluded.status, stmt.excluded.version),
    ).returning(table.c.id)


# What an invoice snapshot overwrites (``attempt_count`` only grows).
_INVOICE_SNAPSHOT = (
    "customer_id",
    "subscription_id",
    "status",
    "billing_reason",
    "amount_due",
    "amount_paid",
    "currency",
    "next_payment_attempt",
    "paid_at",
    "voided_at",
    "marked_uncollectible_at",
    "hosted_invoice_url",
    "processor_created",
    "version",
)


_INVOICE_COLUMNS = ("id", *_INVOICE_SNAPSHOT, "attempt_count")


def _invoice_row(rec: so.InvoiceRecord, version: int) -> dict[str, Any]:
    return {
        "id": rec.id,
        "customer_id": rec.customer_id,
        "subscription_id": rec.subscription_id,
        "status": rec.status,
        "billing_reason": rec.billing_reason,
        "amount_due": rec.amount_due,
        "amount_paid": rec.amount_paid,
        "currency": rec.currency,
        "next_payment_attempt": rec.next_payment_attempt,
        "paid_at": rec.paid_at,
        "voided_at": rec.voided_at,
        "marked_uncollectible_at": rec.marked_uncollectible_at,
        "hosted_invoice_url": rec.hosted_invoice_url,
        "processor_created": rec.created,
        "attempt_count": rec.attempt_count,
        "version": version,
    }


def record_attempt(session: Session, values: dict[str, Any]) -> None:
    """Insert a charge attempt or fill in what an earlier event about it did not say."""
    record_attempts(session, [values])


def record_attempts(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert charge attempts or fill in what earlier events about them did not say.

    Whatever the order events arrive in, a row ends the same: the charge's own time
    and event (``timed_by_charge``) win over an invoice event's; between two sources of
    the same rank the smaller event id wins; other facts fill in what is missing.
    """
    forget_reads(session)
    for part in rounds(rows, lambda values: values["attempt_key"]):
        shapes: dict[tuple[tuple[str, ...], bool], list[dict[str, Any]]] = {}
        for values in part:
            shape = (tuple(sorted(values)), bool(values.get("numbered_by_invoice")))
            shapes.setdefault(shape, []).append(values)
        for (keys, numbered), same in shapes.items():
            session.execute(_attempt_upsert(keys, numbered), same)
    _renumber(session, sorted({v["invoice_id"] for v in rows if v.get("invoice_id")}))


@cache
def _attempt_upsert(keys: tuple[str, ...], numbered: bool) -> Any:
    """The upsert of attempts that say the same things (``keys``)."""
    table = core_table(ChargeAttempt)
    stmt = insert(table)
    new, old = stmt.excluded, table.c
    fill: dict[str, Any] = {
        k: func.coalesce(old[k], new[k]) for k in keys if k not in _ATTEMPT_RANKED
    }
    if numbered:
        fill["attempt_number"] = new.attempt_number
        fill["numbered_by_invoice"] = literal(True)
    fill["outcome"] = new.outcome
    charge_wins = new.timed_by_charge & ~old.timed_by_charge
    same_rank = new.timed_by_charge == old.timed_by_charge
    fill["attempted_at"] = case(
        (charge_wins, new.attempted_at),
        (same_rank, func.least(old.attempted_at, new.attempted_at)),
        else_=old.attempted_at,
    )
    fill["source_event_id"] = case(
        (charge_wins, new.source_event_id),
        (same_rank, func.least(old.source_event_id, new.source_event_id)),
        else_=old.source_event_id,
    )
    fill["timed_by_charge"] = old.timed_by_charge | new.timed_by_charge
    # Our own channels (retry, customer, card updater) name themselves; the processor's
    # webhook about the same charge never overwrites that.
    fill["triggered_by"] = case(
        (new.triggered_by != TriggeredBy.PROCESSOR.value, new.triggered_by),
        else_=old.triggered_by,
    )
    return stmt.on_conflict_do_update(index_elements=[table.c.attempt_key], set_=fill)


# Attempt columns an upsert decides by rank, not by filling in what is missing.
_ATTEMPT_RANKED = (
    "attempt_key",
    "attempt_number",
    "numbered_by_invoice",
    "outcome",
    "attempted_at",
    "source_event_id",
    "timed_by_charge",
)


def _renumber(session: Session, invoice_ids: list[str]) -> None:
    """Number attempts the invoices did not number by time, so arrival order never matters.

    A current-API ``invoice.payment_failed`` names no charge, so its failure is first
    recorded as a stand-in ``<invoice>#<n>``. Once the invoice's n-th failed charge is
    known (linked through its payment intent), the stand-in is that same attempt and is
    dropped: one failure never counts twice against the policy or the network rules.
    """
    if not invoice_ids:
        return
    table = core_table(ChargeAttempt)
    other = table.alias("charged")
    charges = (
        select(func.count())
        .where(
            other.c.invoice_id == table.c.invoice_id,
            other.c.charge_id.is_not(None),
            other.c.outcome == "failed",
        )
        .scalar_subquery()
    )
    session.execute(
        delete(table).where(
            among(table.c.invoice_id, invoice_ids),
            table.c.charge_id.is_(None),
            table.c.numbered_by_invoice.is_(True),
            table.c.attempt_number <= charges,
        )
    )
    numbered = (
        select(
            table.c.id,
            func.row_number()
            .over(
                partition_by=table.c.invoice_id,
                order_by=(table.c.attempted_at, table.c.attempt_key),
            )
            .label("n"),
        )
        .where(among(table.c.invoice_id, invoice_ids), table.c.outcome == "failed")
        .subquery()
    )
    session.execute(
        update(table)
        .where(
            table.c.id == numbered.c.id,
            table.c.numbered_by_invoice.is_(False),
            table.c.attempt_number.is_distinct_from(numbered.c.n),
        )
        .values(attempt_number=numbered.c.n)
    )


def apply_charge(
    session: Session, obj: so.Obj, event_id: str, triggered_by: TriggeredBy
) -> so.ChargeRecord:
    """Record a charge outcome (locking its invoice first); return what it said, with
    the invoice its payment intent pays when the charge itself names none (current API)."""
    return apply_charges(session, [(obj, event_id)], triggered_by)[0]


def apply_charges(
    session: Session, charges: list[tuple[so.Obj, str]], triggered_by: TriggeredBy
) -> list[so.ChargeRecord]:
    """``apply_charge`` for a batch of (charge, event id): payment intents locked, links
    read, invoices locked and attempts recorded in a few statements."""
    recs = [so.read_charge(obj) for obj, _ in charges]
    intents = sorted({r.payment_intent_id or "" for r in recs if not r.invoice_id} - {""})
    if intents:
        lock_payment_intents(session, intents)
        links: dict[str, str] = {
            row.payment_intent_id: row.invoice_id
            for row in session.execute(
                select(InvoicePayment.payment_intent_id, InvoicePayment.invoice_id).where(
                    among(InvoicePayment.payment_intent_id, intents)
                )
            )
        }
        recs = [
            replace(r, invoice_id=links.get(r.payment_intent_id or ""))
            if not r.invoice_id and r.payment_intent_id
            else r
            for r in recs
        ]
    _lock_named(session, [(rec.invoice_id, rec.customer_id) for rec in recs])
    record_attempts(
        session,
        [
            attempt_from_charge(
                rec,
                attempt_key=rec.id,
                invoice_id=rec.invoice_id,
                attempted_at=rec.created,
                succeeded=rec.succeeded,
                triggered_by=triggered_by,
                source_event_id=event_id,
            )
            | {"timed_by_charge": rec.created is not None}
            for rec, (_, event_id) in zip(recs, charges, strict=True)
        ],
    )
    return recs


def _lock_named(session: Session, named: list[tuple[str | None, str | None]]) -> None:
    """Lock the invoices a batch names (invoice, customer), each learning its customer
    from whichever of its events names one."""
    customers: dict[str, str | None] = {}
    for invoice_id, customer_id in named:
        if invoice_id:
            customers[invoice_id] = customers.get(invoice_id) or customer_id
    if customers:
        lock_invoices(session, customers)


def apply_invoice_payment(session: Session, obj: so.Obj) -> tuple[str, datetime | None] | None:
    """Link a payment intent to the invoice it pays and attach the charges already
    recorded under it. Returns None when no charge was attached, else the invoice and
    the time of the earliest failed charge attached (its case opens then), if any."""
    forget_reads(session)
    rec = so.read_invoice_payment(obj)
    if not rec.invoice_id or not rec.payment_intent_id:
        return None
    lock_payment_intent(session, rec.payment_intent_id)
    session.execute(
        insert(core_table(InvoicePayment))
        .values(
            payment_intent_id=rec.payment_intent_id,
            invoice_id=rec.invoice_id,
            invoice_payment_id=rec.id,
        )
        .on_conflict_do_nothing(index_elements=["payment_intent_id"])
    )
    invoice_id = session.scalar(
        select(InvoicePayment.invoice_id).where(
            InvoicePayment.payment_intent_id == rec.payment_intent_id
        )
    )
    assert invoice_id is not None
    table = core_table(ChargeAttempt)
    customer_id = session.scalar(
        select(table.c.customer_id)
        .where(table.c.payment_intent_id == rec.payment_intent_id, table.c.invoice_id.is_(None))
        .limit(1)
    )
    lock_invoice(session, invoice_id, customer_id=customer_id)
    attached = session.execute(
        update(table)
        .where(table.c.payment_intent_id == rec.payment_intent_id, table.c.invoice_id.is_(None))
        .values(invoice_id=invoice_id)
        .returning(table.c.outcome, table.c.attempted_at)
    ).all()
    if not attached:
        return None
    _renumber(session, [invoice_id])
    failed = [at for outcome, at in attached if outcome == "failed"]
    return invoice_id, min(failed, default=None)


@dataclass(frozen=True)
class InvoiceFailure:
    """An event saying an invoice's payment failed. ``failure_code``: what the event's
    type says of the failure (``authentication_required``) when the charge says nothing."""

    obj: so.Obj
    version: int
    event_id: str
    triggered_by: TriggeredBy
    failure_code: str | None = None


def apply_invoice_failed(
    session: Session,
    obj: so.Obj,
    version: int,
    event_id: str,
    triggered_by: TriggeredBy,
    failure_code: str | None = None,
) -> tuple[so.InvoiceRecord, datetime]:
    """An invoice payment failed: update the invoice and record the attempt; returns
    the invoice and the time of the failure."""
    failure = InvoiceFailure(obj, version, event_id, triggered_by, failure_code)
    return apply_invoices_failed(session, [failure])[0]


def apply_invoices_failed(
    session: Session, failures: list[InvoiceFailure]
) -> list[tuple[so.InvoiceRecord, datetime]]:
    """``apply_invoice_failed`` for a batch: the invoices locked (in id order), updated
    and their attempts recorded in a few statements."""
    recs = [so.read_invoice(f.obj) for f in failures]
    _lock_named(session, [(rec.id, rec.customer_id) for rec in recs])
    apply_invoices(session, [(f.obj, f.version) for f in failures])
    attempts, ats = [], [datetime.fromtimestamp(f.version, tz=UTC) for f in failures]
    for f, rec, at in zip(failures, recs, ats, strict=True):
        attempt_number = max(rec.attempt_count, 1)
        attempts.append(
            {
                "attempt_key": rec.charge_id or f"{rec.id}#{attempt_number}",
                "charge_id": rec.charge_id,
                "payment_intent_id": rec.payment_intent_id,
                "invoice_id": rec.id,
                "customer_id": rec.customer_id,
                "subscription_id": rec.subscription_id,
                "attempt_number": attempt_number,
                "numbered_by_invoice": True,
                "attempted_at": at,
                "amount": rec.amount_due,
                "currency": rec.currency,
                "outcome": "failed",
                "failure_code": f.failure_code,
                "triggered_by": f.triggered_by.value,
                "source_event_id": f.event_id,
            }
        )
    record_attempts(session, attempts)
    return list(zip(recs, ats, strict=True))


def apply_invoice_state(session: Session, obj: so.Obj, version: int) -> so.InvoiceRecord:
    """Any other invoice event: lock and update the snapshot."""
    rec = so.read_invoice(obj)
    lock_invoice(session, rec.id, customer_id=rec.customer_id)
    apply_invoice(session, obj, version)
    return rec


def apply_upcoming(session: Session, obj: so.Obj, version: int) -> None:
    """``invoice.upcoming`` carries no invoice id: note the renewal on the subscription,
    unless a newer ``invoice.upcoming`` already did."""
    forget_reads(session)
    rec = so.read_invoice({**obj, "id": obj.get("id") or "upcoming"})
    if not rec.subscription_id:
        return
    renewal = so.ts(obj.get("next_payment_attempt") or obj.get("period_end"))
    table = core_table(Subscription)
    values = {
        "upcoming_amount": rec.amount_due,
        "upcoming_at": renewal,
        "upcoming_version": version,
    }
    stmt = insert(table).values(id=rec.subscription_id, **values)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[table.c.id],
            set_={k: stmt.excluded[k] for k in values},
            where=func.coalesce(table.c.upcoming_version, -1) <= stmt.excluded.upcoming_version,
        )
    )
