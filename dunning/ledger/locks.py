"""Row locks on the ledger, taken in one order everywhere: payment intent (a charge
not yet linked to its invoice), invoice, then subscription.

Two workers applying events of one invoice at once must serialise instead of racing,
so every change that can move a dunning case first locks the invoice row (creating a
bare one when the invoice has not been seen yet).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import ARRAY, Text, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dunning.db import among
from dunning.db import table as core_table
from dunning.ledger.models import Invoice, Subscription
from dunning.ledger.queries import forget_reads, read_once, remember


def lock_invoice(session: Session, invoice_id: str, *, customer_id: str | None = None) -> Invoice:
    """Make sure the invoice row exists and hold its lock for this transaction; a bare
    row learns its customer from whichever event names it first."""
    return lock_invoices(session, {invoice_id: customer_id})[invoice_id]


def lock_invoices(session: Session, customers: dict[str, str | None]) -> dict[str, Invoice]:
    """``lock_invoice`` for a batch of invoices (id: customer), in id order, in two
    statements."""
    ids = sorted(customers)
    # Once this session made sure of a row, only a customer to fill in needs the insert.
    ensured: set[str] = session.info.setdefault("invoices_ensured", set())
    unsure = [i for i in ids if i not in ensured or customers[i] is not None]
    if unsure:
        rows = [{"id": i, "customer_id": customers[i]} for i in unsure]
        session.execute(_ensure_invoices(), rows)
        ensured.update(unsure)
    # populate_existing: the rows as locked, not as an earlier read of this session saw them
    locked = session.scalars(
        select(Invoice)
        .where(among(Invoice.id, ids))
        .order_by(Invoice.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    found = {invoice.id: invoice for invoice in locked}
    missing = {i: customers[i] for i in ids if i not in found}
    if missing:  # the transaction that inserted them rolled back
        ensured.difference_update(missing)
        found.update(lock_invoices(session, missing))
    return found


def share_subscriptions(session: Session, ids: list[str]) -> dict[str, Subscription]:
    """Hold a share lock on subscriptions (creating bare rows for unseen ones), so a
    cancellation applied concurrently either is seen or waits; the rows as locked."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    session.execute(_ensure_subscriptions(), [{"id": i} for i in wanted])
    forget_reads(session)
    rows = session.scalars(
        select(Subscription)
        .where(among(Subscription.id, wanted))
        .order_by(Subscription.id)
        .with_for_update(read=True)
        .execution_options(populate_existing=True)
    )
    shared = {row.id: row for row in rows}
    for i, row in shared.items():
        remember(session, (Subscription, i), row)
    session.info.setdefault("subscriptions_shared", set()).update(shared)
    return shared


def share_subscription(session: Session, subscription_id: str) -> Subscription:
    """``share_subscriptions`` for one; a row this transaction already holds is not
    locked again, only read (once, inside ``reads_once``)."""
    if subscription_id not in session.info.get("subscriptions_shared", ()):
        return share_subscriptions(session, [subscription_id])[subscription_id]
    row = read_once(
        session,
        (Subscription, subscription_id),
        lambda: session.get(Subscription, subscription_id, populate_existing=True),
    )
    assert row is not None  # the row was made sure of when it was locked
    return row


def lock_invoices_of_subscription(session: Session, subscription_id: str) -> list[str]:
    """Lock the subscription's invoices (in id order) before touching the subscription."""
    return list(
        session.scalars(
            select(Invoice.id)
            .where(Invoice.subscription_id == subscription_id)
            .order_by(Invoice.id)
            .with_for_update()
        )
    )


def lock_payment_intent(session: Session, payment_intent_id: str) -> None:
    """Serialise a charge and the ``invoice_payment`` naming its payment intent, so the
    one applied second always sees the first (an advisory lock: there may be no row)."""
    lock_payment_intents(session, [payment_intent_id])


def lock_payment_intents(session: Session, payment_intent_ids: list[str]) -> None:
    """``lock_payment_intent`` for several, in id order, in one statement."""
    given = literal(sorted(set(payment_intent_ids)), ARRAY(Text))
    ids = func.unnest(given).table_valued("id").render_derived()
    session.execute(
        select(func.pg_advisory_xact_lock(func.hashtextextended("pi:" + ids.c.id, 0)))
        .select_from(ids)
        .order_by(ids.c.id)
    )


# Statements built once and run for many rows: a multi-row VALUES is compiled anew on
# every call, which cost a tenth of applying an event's CPU (bench/apply.py).
@cache
def _ensure_invoices() -> Any:
    table = core_table(Invoice)
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={"customer_id": stmt.excluded.customer_id},
        where=table.c.customer_id.is_(None) & stmt.excluded.customer_id.is_not(None),
    )


@cache
def _ensure_subscriptions() -> Any:
    return insert(core_table(Subscription)).on_conflict_do_nothing(index_elements=["id"])
