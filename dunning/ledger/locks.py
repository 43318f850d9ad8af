"""Row locks on the ledger, taken in one order everywhere: payment intent (a charge
not yet linked to its invoice), invoice, then subscription.

Two workers applying events of one invoice at once must serialise instead of racing,
so every change that can move a dunning case first locks the invoice row (creating a
bare one when the invoice has not been seen yet).
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dunning.db import table as core_table
from dunning.ledger.models import Invoice


def lock_invoice(session: Session, invoice_id: str, *, customer_id: str | None = None) -> Invoice:
    """Make sure the invoice row exists and hold its lock for this transaction; a bare
    row learns its customer from whichever event names it first."""
    # Once this session made sure of the row, only a customer to fill in needs the insert.
    ensured: set[str] = session.info.setdefault("invoices_ensured", set())
    if invoice_id not in ensured or customer_id is not None:
        table = core_table(Invoice)
        stmt = insert(table).values(id=invoice_id, customer_id=customer_id)
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["id"],
                set_={"customer_id": stmt.excluded.customer_id},
                where=table.c.customer_id.is_(None) & stmt.excluded.customer_id.is_not(None),
            )
        )
        ensured.add(invoice_id)
    # populate_existing: the row as locked, not as an earlier read of this session saw it
    invoice = session.execute(
        select(Invoice)
        .where(Invoice.id == invoice_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if invoice is None:  # the transaction that inserted it rolled back
        ensured.discard(invoice_id)
        return lock_invoice(session, invoice_id, customer_id=customer_id)
    return invoice


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
    session.execute(
        select(func.pg_advisory_xact_lock(func.hashtextextended("pi:" + payment_intent_id, 0)))
    )
