"""Every table, imported in one place so Alembic and tests see the whole schema."""

from dunning.admin.models import ApiKey, AuditEntry
from dunning.alerts.models import AlertState
from dunning.card_updater.models import CardUpdaterRequest
from dunning.cases.models import CaseDecision, CaseEvent, DunningCase
from dunning.db import Base
from dunning.events.models import ProcessorEvent
from dunning.ledger.models import ChargeAttempt, Customer, Invoice, PaymentMethod, Subscription
from dunning.notify.models import Notification
from dunning.policy.tables import PolicyActivation, RetryPolicy
from dunning.reports.models import ReportCohortGroup, ReportCohortMonth, ReportCohortRecovery
from dunning.scheduler.models import ScheduledAction

__all__ = [
    "AlertState",
    "ApiKey",
    "AuditEntry",
    "Base",
    "CardUpdaterRequest",
    "CaseDecision",
    "CaseEvent",
    "ChargeAttempt",
    "Customer",
    "DunningCase",
    "Invoice",
    "Notification",
    "PaymentMethod",
    "PolicyActivation",
    "ProcessorEvent",
    "ReportCohortGroup",
    "ReportCohortMonth",
    "ReportCohortRecovery",
    "RetryPolicy",
    "ScheduledAction",
    "Subscription",
]
