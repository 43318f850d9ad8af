"""Row locks on the ledger, taken in one order everywhere: invoice, then subscription.

Two workers applying events of one invoice at once must serialise instead of racing,
so every change that can move a dunning case first locks the invoice row (creating a
bare one when the invoice has not been seen yet).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dunning.db import table as core_table
from dunning.ledger.models import Invoice


def lock_invoice(session: Session, invoice_id: str, *, customer_id: str | None = None) -> Invoice:
    """Make sure the invoice row exists and hold its lock for this transaction."""
    session.execute(
        insert(core_table(Invoice))
        .values(id=invoice_id, customer_id=customer_id)
        .on_conflict_do_nothing(index_elements=["id"])
    )
    invoice = session.execute(
        select(Invoice).where(Invoice.id == invoice_id).with_for_update()
    ).scalar_one()
    session.refresh(invoice)
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
