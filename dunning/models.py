"""Every table, imported in one place so Alembic and tests see the whole schema."""

from dunning.cases.models import DunningCase
from dunning.db import Base
from dunning.events.models import ProcessorEvent
from dunning.ledger.models import ChargeAttempt, Customer, Invoice, PaymentMethod, Subscription

__all__ = [
    "Base",
    "ChargeAttempt",
    "Customer",
    "DunningCase",
    "Invoice",
    "PaymentMethod",
    "ProcessorEvent",
    "Subscription",
]
