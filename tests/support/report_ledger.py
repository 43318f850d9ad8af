"""A small hand-built ledger whose report numbers are worked out by hand in the tests.

Period under test: October 2026 (``[2026-10-01, 2026-11-01)``). Every row is inserted
directly. Cases (amounts in minor units):

USD cohort (opened in October): 10 cases
  c1  1000 recovered by retry        24 h   policy 1  insufficient_funds visa     smb   Basic
  c2  2000 recovered by processor    48 h   policy 2  do_not_honor visa           smb   Basic
  c3  3000 recovered by customer     96 h   policy 1  expired_card mastercard     ent.  Pro
  c4  4000 recovered by card_updater 240 h  policy 2  expired_card mastercard     ent.  Pro
  c5  5000 canceled by end action           policy 1  stolen_card visa            smb   Pro
  c6  6000 open                             policy 2  insufficient_funds mc       ent.  Pro
  c7  7000 reopened, then recovered by retry 132 h, policy 1: three failed charges
      (insufficient_funds visa first), two decisions, marked uncollectible and then paid
  c8  120000 (yearly plan) canceled by end action, policy 2, generic_decline visa, ent.
  c9  900 voided, one-off invoice (not a renewal), no segment, no subscription, policy 1
  c15 1100 canceled by the customer (no end action), no decision, no decline code
EUR cohort: c10 1500 recovered by customer 24 h (policy 1); c11 2500 exhausted (policy 2)
Outside the cohort: c12 (Sept, recovered), c14 (Sept, canceled by end action on Oct 10),
c13 (Nov, open).

SMS (``_sms``): c3 updated its card through one and was recovered, c6 updated its card
(still open), c1 got two without a click, c2's failed, c10 (EUR) paid through one. Card
updater calls (``_updater_requests``): c4 twice (one hit), c6 once (a hit), c10 once.

Subscription start dates (exact churn): the USD subscriptions of the cases started on
June 1; sub_old on May 1 (canceled Sept 15), sub_new on Oct 5. The EUR ones (sub_10,
sub_11) have none: they fall back to "an invoice before". Four have no invoice in the
ledger, so only their start date tells: sub_trial (trialing since Sept 20) and sub_year
(yearly, since 2025) were active on Oct 1, sub_oct started on Oct 12, sub_nov on Nov 3.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, insert

from dunning import models as m
from dunning.db import table

OCT = datetime(2026, 10, 1, tzinfo=UTC)


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def _customers() -> list[dict[str, Any]]:
    return [
        {"id": "cus_a", "segment": "smb", "default_payment_method_id": "pm_a"},
        {"id": "cus_b", "segment": "enterprise", "default_payment_method_id": "pm_b"},
        {"id": "cus_c", "segment": None, "default_payment_method_id": None},
        {"id": "cus_e", "segment": "smb", "default_payment_method_id": "pm_e"},
    ]


def _payment_methods() -> list[dict[str, Any]]:
    return [
        {"id": "pm_a", "customer_id": "cus_a", "brand": "visa", "last4": "4242",
         "exp_month": 11, "exp_year": 2026},
        {"id": "pm_b", "customer_id": "cus_b", "brand": "mastercard", "last4": "4444",
         "exp_month": 1, "exp_year": 2030},
        {"id": "pm_e", "customer_id": "cus_e", "brand": "visa", "last4": "1881",
         "exp_month": 10, "exp_year": 2026},
        {"id": "pm_old", "customer_id": "cus_a", "brand": "visa", "last4": "0005",
         "exp_month": 10, "exp_year": 2026},
    ]  # fmt: skip


def _sub(
    sid: str,
    customer: str,
    amount: int,
    *,
    currency: str = "usd",
    plan: str = "Basic",
    interval: str = "month",
    status: str = "active",
    canceled_at: datetime | None = None,
    period_end: datetime | None = None,
    pm: str | None = None,
    upcoming: int | None = None,
    cancel_at_period_end: bool = False,
    start: datetime | None = None,
) -> dict[str, Any]:
    return {
        "id": sid,
        "customer_id": customer,
        "status": status,
        "plan_id": f"plan_{plan.lower().replace(' ', '_')}",
        "plan_name": plan,
        "interval": interval,
        "interval_count": 1,
        "amount": amount,
        "currency": currency,
        "canceled_at": canceled_at,
        "current_period_end": period_end or datetime(2027, 1, 1, tzinfo=UTC),
        "default_payment_method_id": pm,
        "upcoming_amount": upcoming,
        "cancel_at_period_end": cancel_at_period_end,
        "start_date": start,
    }


def _subscriptions() -> list[dict[str, Any]]:
    june = at(6, 1)
    return [
        _sub("sub_1", "cus_a", 1000, period_end=at(11, 20), start=june),
        _sub("sub_2", "cus_a", 2000, period_end=at(11, 10), pm="pm_old", upcoming=2100,
             start=june),
        _sub("sub_3", "cus_b", 3000, plan="Pro", period_end=at(11, 15), start=june),
        _sub("sub_4", "cus_b", 4000, plan="Pro", start=june),
        _sub("sub_5", "cus_a", 5000, plan="Pro", status="canceled", canceled_at=at(10, 25),
             start=june),
        _sub("sub_6", "cus_b", 6000, plan="Pro", period_end=at(11, 12), pm="pm_old",
             cancel_at_period_end=True, start=june),
        _sub("sub_7", "cus_a", 7000, period_end=at(12, 15), pm="pm_old", start=june),
        _sub("sub_8", "cus_b", 120000, plan="Pro yearly", interval="year", status="canceled",
             canceled_at=at(10, 30), start=june),
        _sub("sub_10", "cus_e", 1500, currency="eur", period_end=at(11, 5)),  # no start date
        _sub("sub_11", "cus_e", 2500, currency="eur"),  # no start date
        _sub("sub_12", "cus_a", 1200, start=june),
        _sub("sub_13", "cus_a", 1300, start=june),
        _sub("sub_14", "cus_a", 3000, status="canceled", canceled_at=at(10, 10), start=june),
        _sub("sub_15", "cus_a", 1100, status="canceled", canceled_at=at(10, 11), start=june),
        # not active at the start of October:
        _sub("sub_old", "cus_a", 9999, status="canceled", canceled_at=at(9, 15), start=at(5, 1)),
        _sub("sub_new", "cus_a", 8888, start=at(10, 5)),
        _sub("sub_inc", "cus_a", 7777, status="incomplete", start=at(9, 1)),
        # no invoice in the ledger: only the start date tells
        _sub("sub_trial", "cus_b", 2000, status="trialing", start=at(9, 20)),
        _sub("sub_year", "cus_b", 24000, plan="Pro yearly", interval="year",
             start=datetime(2025, 3, 1, tzinfo=UTC)),
        _sub("sub_oct", "cus_b", 500, status="trialing", start=at(10, 12)),
        _sub("sub_nov", "cus_b", 700, start=at(11, 3)),
    ]  # fmt: skip


def _invoice(
    iid: str,
    sub: str | None,
    amount: int,
    created: datetime,
    *,
    customer: str = "cus_a",
    currency: str = "usd",
    reason: str | None = "subscription_cycle",
    status: str = "open",
    paid_at: datetime | None = None,
    amount_paid: int | None = None,
) -> dict[str, Any]:
    return {
        "id": iid,
        "customer_id": customer,
        "subscription_id": sub,
        "status": status,
        "billing_reason": reason,
        "amount_due": amount,
        "amount_paid": amount_paid if amount_paid is not None else (amount if paid_at else 0),
        "currency": currency,
        "processor_created": created,
        "paid_at": paid_at,
    }


# id, invoice, customer, subscription, state, amount, currency, policy, end_action,
# opened_at, closed_at, recovered_amount, recovered_by
CASES: list[tuple[Any, ...]] = [
    (1, "in_1", "cus_a", "sub_1", "recovered", 1000, "usd", 1, None,
     at(10, 2), at(10, 3), 1000, "retry"),
    (2, "in_2", "cus_a", "sub_2", "recovered", 2000, "usd", 2, None,
     at(10, 5), at(10, 7), 2000, "processor"),
    (3, "in_3", "cus_b", "sub_3", "recovered", 3000, "usd", 1, None,
     at(10, 10), at(10, 14), 3000, "customer"),
    (4, "in_4", "cus_b", "sub_4", "recovered", 4000, "usd", 2, None,
     at(10, 12), at(10, 22), 4000, "card_updater"),
    (5, "in_5", "cus_a", "sub_5", "canceled", 5000, "usd", 1, "cancel_subscription",
     at(10, 15), at(10, 25), None, None),
    (6, "in_6", "cus_b", "sub_6", "open", 6000, "usd", 2, None,
     at(10, 20), None, None, None),
    (7, "in_7", "cus_a", "sub_7", "recovered", 7000, "usd", 1, "mark_uncollectible",
     at(10, 3), at(10, 8, 12), 7000, "retry"),
    (8, "in_8", "cus_b", "sub_8", "canceled", 120000, "usd", 2, "cancel_subscription",
     at(10, 1, 6), at(10, 30), None, None),
    (9, "in_9", "cus_c", None, "voided", 900, "usd", 1, None,
     at(10, 18), at(10, 19), None, None),
    (10, "in_10", "cus_e", "sub_10", "recovered", 1500, "eur", 1, None,
     at(10, 6), at(10, 7), 1500, "customer"),
    (11, "in_11", "cus_e", "sub_11", "exhausted", 2500, "eur", 2, "leave_past_due",
     at(10, 8), at(10, 28), None, None),
    (12, "in_12", "cus_a", "sub_12", "recovered", 1200, "usd", 1, None,
     at(9, 25), at(10, 2), 1200, "retry"),
    (13, "in_13", "cus_a", "sub_13", "open", 1300, "usd", 1, None,
     at(11, 2), None, None, None),
    (14, "in_14", "cus_a", "sub_14", "canceled", 3000, "usd", 1, "cancel_subscription",
     at(9, 20), at(10, 10), None, None),
    (15, "in_15", "cus_a", "sub_15", "canceled", 1100, "usd", 1, None,
     at(10, 9), at(10, 11), None, None),
]  # fmt: skip

_CASE_COLUMNS = (
    "id", "invoice_id", "customer_id", "subscription_id", "state", "amount", "currency",
    "policy_id", "end_action", "opened_at", "closed_at", "recovered_amount", "recovered_by",
)  # fmt: skip


def _cases() -> list[dict[str, Any]]:
    rows = []
    latest_class: dict[int, str] = {}  # the class of each case's last failure
    for case, _, cls in sorted(_DECISION_CLASSES, key=lambda d: d[1]):
        if cls is not None:
            latest_class[case] = cls
    for values in CASES:
        row = dict(zip(_CASE_COLUMNS, values, strict=True))
        row["policy_version"] = 1
        row["decline_class"] = latest_class.get(row["id"])
        rows.append(row)
    return rows


def _invoices() -> list[dict[str, Any]]:
    out = []
    for c in _cases():
        paid = c["state"] == "recovered"
        reason: str | None = "subscription_cycle"
        if c["id"] == 9:
            reason = "manual"
        elif c["id"] == 15:
            reason = None  # no billing reason, but a subscription: still a renewal
        out.append(
            _invoice(
                c["invoice_id"],
                c["subscription_id"],
                c["amount"],
                c["opened_at"].replace(hour=0) if c["opened_at"].hour else c["opened_at"],
                customer=c["customer_id"],
                currency=c["currency"],
                reason=reason,
                status="paid" if paid else "open",
                paid_at=c["closed_at"] if paid else None,
            )
        )
    # The previous period's invoices: evidence that these subscriptions existed on Oct 1.
    for sid, currency in [
        *((f"sub_{n}", "usd") for n in (1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 14, 15)),
        ("sub_10", "eur"),
        ("sub_11", "eur"),
        ("sub_old", "usd"),
        ("sub_inc", "usd"),
    ]:
        out.append(_invoice(f"in_prev_{sid}", sid, 100, at(9, 1), currency=currency,
                            status="paid", paid_at=at(9, 1)))  # fmt: skip
    out += [
        # Renewals paid on their first charge in October: two in USD, one in EUR.
        _invoice("in_p1", "sub_1", 1000, at(10, 4), status="paid", paid_at=at(10, 4)),
        _invoice("in_p2", "sub_2", 2000, at(10, 15), status="paid", paid_at=at(10, 15)),
        _invoice("in_p6", "sub_10", 1500, at(10, 10), currency="eur", customer="cus_e",
                 status="paid", paid_at=at(10, 10)),
        # Not counted: a first invoice, one paid in September, one paid with nothing due.
        _invoice("in_p3", "sub_new", 8888, at(10, 20), reason="subscription_create",
                 status="paid", paid_at=at(10, 20)),
        _invoice("in_p4", "sub_3", 3000, at(9, 30), status="paid", paid_at=at(9, 30)),
        _invoice("in_p5", "sub_4", 0, at(10, 21), status="paid", paid_at=at(10, 21),
                 amount_paid=0),
        _invoice("in_new", "sub_new", 8888, at(10, 5)),
    ]  # fmt: skip
    return out


def _attempt(
    key: str,
    invoice: str,
    when: datetime,
    *,
    outcome: str = "failed",
    code: str | None = None,
    failure_code: str | None = "card_declined",
    brand: str | None = "visa",
    by: str = "processor",
) -> dict[str, Any]:
    return {
        "attempt_key": key,
        "charge_id": key,
        "invoice_id": invoice,
        "attempted_at": when,
        "outcome": outcome,
        "decline_code": code if outcome == "failed" else None,
        "failure_code": failure_code if outcome == "failed" else None,
        "card_brand": brand,
        "triggered_by": by,
        "amount": 1,
        "currency": "usd",
    }


def _attempts() -> list[dict[str, Any]]:
    first = {
        1: ("insufficient_funds", "visa"),
        2: ("do_not_honor", "visa"),
        3: ("expired_card", "mastercard"),
        4: ("expired_card", "mastercard"),
        5: ("stolen_card", "visa"),
        6: ("insufficient_funds", "mastercard"),
        8: ("generic_decline", "visa"),
        9: ("insufficient_funds", "visa"),
        10: ("insufficient_funds", "visa"),
        11: ("insufficient_funds", "visa"),
        12: ("insufficient_funds", "visa"),
        13: ("insufficient_funds", "visa"),
        14: ("stolen_card", "visa"),
    }
    cases = {c["id"]: c for c in _cases()}
    out = [
        _attempt(f"ch_{n}_1", cases[n]["invoice_id"], cases[n]["opened_at"], code=code,
                 brand=brand)
        for n, (code, brand) in first.items()
    ]  # fmt: skip
    out += [
        # c7: failed three times (the first decides its code and brand), then paid by retry.
        _attempt("ch_7_1", "in_7", at(10, 3), code="insufficient_funds"),
        _attempt("ch_7_2", "in_7", at(10, 5), code="do_not_honor", brand="mastercard",
                 by="service"),
        _attempt("ch_7_3", "in_7", at(10, 7), code="generic_decline", brand="mastercard",
                 by="service"),
        _attempt("ch_7_4", "in_7", at(10, 8, 12), outcome="succeeded", by="service"),
        # c15: no decline code, no brand: reported as failure code / unknown.
        _attempt("ch_15_1", "in_15", at(10, 9), code=None, brand=None),
        # Successful charges of paid renewals and recoveries.
        _attempt("ch_p1", "in_p1", at(10, 4), outcome="succeeded"),
        _attempt("ch_1_2", "in_1", at(10, 3), outcome="succeeded", by="service"),
    ]  # fmt: skip
    return out


def _kept_cases() -> list[dict[str, Any]]:
    """The cases with what ``cases.service`` keeps of their first failed charge (by time,
    then id: the order of ``_attempts``): its decline code, else its failure code, and its
    card brand."""
    first: dict[str, dict[str, Any]] = {}
    for a in _attempts():
        known = first.get(a["invoice_id"])
        if a["outcome"] == "failed" and (
            known is None or a["attempted_at"] < known["attempted_at"]
        ):
            first[a["invoice_id"]] = a
    rows = _cases()
    for row in rows:
        a = first.get(row["invoice_id"], {})
        code = a.get("decline_code")
        row["first_decline_code"] = a.get("failure_code") if code is None else code
        row["first_card_brand"] = a.get("card_brand")
    return rows


_DECISION_CLASSES: list[tuple[int, datetime, str | None]] = [
    (1, at(10, 2), "insufficient_funds"),
    (2, at(10, 5), "temporary"),
    (2, at(10, 6), "hard"),  # the latest decides: hard
    (3, at(10, 10), "card_data"),
    (4, at(10, 12), "card_data"),
    (5, at(10, 15), "hard"),
    (6, at(10, 20), "insufficient_funds"),
    (7, at(10, 3), "hard"),
    (7, at(10, 5), "insufficient_funds"),
    (7, at(10, 7), None),  # a decision without a class does not count
    (8, at(10, 1, 6), "temporary"),
    (9, at(10, 18), "insufficient_funds"),
    (10, at(10, 6), "insufficient_funds"),
    (11, at(10, 8), "insufficient_funds"),
]


def _decisions() -> list[dict[str, Any]]:
    return [
        {"case_id": case, "decided_at": when, "kind": "retry", "attempt_number": 1,
         "decline_class": cls, "reason": "test"}
        for case, when, cls in _DECISION_CLASSES
    ]  # fmt: skip


def _notifications() -> list[dict[str, Any]]:
    templates = {1: "payment_failed", 2: "payment_reminder", None: "final_notice"}
    rows = [
        (1, 3, 1, "sent"),
        (2, 4, 1, "sent"),
        (3, 6, 1, "sent"),
        (4, 6, 2, "sent"),
        (5, 5, 1, "sent"),
        (6, 5, 2, "failed"),
        (7, 5, None, "sent"),  # the final notice has no step number
        (8, 12, 1, "sent"),  # outside the cohort
        (9, 7, 1, "sent"),
        (10, 1, 1, "claimed"),  # never sent
        (11, 3, None, "sent"),  # "payment recovered": not a step of the sequence
    ]
    return [
        {"id": nid, "dedupe_key": f"case:{case}:email:{step or nid}", "kind": "dunning",
         "template": "payment_recovered" if nid == 11 else templates[step], "case_id": case,
         "step": step, "status": status}
        for nid, case, step, status in rows
    ]  # fmt: skip


def _case_events() -> list[dict[str, Any]]:
    rows = [
        (3, "link_opened", 1),
        (3, "card_updated", 1),
        (4, "link_opened", 2),
        (4, "link_opened", 2),  # opened twice: one email
        (6, "link_opened", 4),
        (6, "card_updated", 4),
        (12, "link_opened", 8),
        (7, "card_updated", 9),  # card updated through the link (open not recorded)
        (5, "link_opened", None),  # not through an email
    ]
    return [
        {"case_id": case, "at": at(10, 20), "kind": kind, "notification_id": nid}
        for case, kind, nid in [*rows, *_SMS_EVENTS]
    ]


def _sms() -> list[dict[str, Any]]:
    """Text messages (``channel = 'sms'``): they never count as emails in the funnel."""
    rows = [
        (20, 3, "sent"),  # c3 updated its card through it and was recovered
        (21, 6, "sent"),  # c6 updated its card through it, still open
        (22, 1, "sent"),  # c1: no click
        (23, 1, "sent"),  # c1 again
        (24, 2, "failed"),  # never sent
        (25, 12, "sent"),  # outside the cohort
        (26, 10, "sent"),  # c10 (EUR) paid through it
    ]
    return [
        {"id": nid, "dedupe_key": f"case:{case}:sms:{nid}", "kind": "dunning", "channel": "sms",
         "template": "payment_failed", "case_id": case, "step": 1, "status": status}
        for nid, case, status in rows
    ]  # fmt: skip


_SMS_EVENTS = [(3, "link_opened", 20), (3, "card_updated", 20), (6, "card_updated", 21),
               (12, "card_updated", 25), (10, "payment_attempted", 26)]  # fmt: skip


def _updater_requests() -> list[dict[str, Any]]:
    """Card-updater calls: c4 asked twice (one hit), c6 once (a hit), c3's first read of
    its card (``fetch``: no updater call), c10 (EUR) once, c12 outside the cohort."""
    rows = [
        (4, "expired_card", "unchanged"),
        (4, "before_retry", "new_expiry"),
        (6, "before_retry", "new_card"),
        (3, "fetch", "new_card"),
        (10, "before_retry", "contact_cardholder"),
        (12, "before_retry", "new_expiry"),
    ]
    return [
        {"case_id": case, "provider": "test", "reason": reason, "asked_at": at(10, 20),
         "result": result}
        for case, reason, result in rows
    ]  # fmt: skip


def insert_ledger(conn: Connection) -> None:
    """Insert the whole ledger on ``conn`` (the caller commits or rolls back)."""
    conn.execute(
        insert(table(m.RetryPolicy)),
        [
            {"id": 1, "name": "default", "version": 1, "source": "", "created_by": "t"},
            {"id": 2, "name": "paydays", "version": 1, "source": "", "created_by": "t"},
        ],
    )
    conn.execute(
        insert(table(m.PolicyActivation)).values(
            id=1, active_policy_id=1, split_policy_id=2, split_percent=50, updated_by="t"
        )
    )
    for model, rows in (
        (m.Customer, _customers()),
        (m.PaymentMethod, _payment_methods()),
        (m.Subscription, _subscriptions()),
        (m.Invoice, _invoices()),
        (m.DunningCase, _kept_cases()),
        (m.ChargeAttempt, _attempts()),
        (m.CaseDecision, _decisions()),
        (m.Notification, _notifications()),
        (m.Notification, _sms()),  # a list's first row names the columns: one insert each
        (m.CaseEvent, _case_events()),
        (m.CardUpdaterRequest, _updater_requests()),
    ):
        conn.execute(insert(table(model)), rows)
