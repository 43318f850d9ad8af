"""A world estimated from the operator's own ledger (``dunning backtest --from-ledger``).

Why: the default world is an average of public figures; a merchant's customers differ.
What the ledger shows directly (the first decline of each case, card brands, amounts and
currencies, customers' time zones, how often and how fast cards were replaced) replaces
the default world's figures; what it cannot show (the hidden state behind a code, pay
cycles, issuer behaviour) stays as the base world assumes. Read-only queries.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from dunning.backtest.world import State, World, world_from_dict
from dunning.cases.models import DunningCase
from dunning.ledger.models import ChargeAttempt, Customer, PaymentMethod
from dunning.notify.models import Notification

LEDGER = "the operator's ledger"
MAX_AMOUNTS = 5000  # empirical amounts kept (a sample is enough to draw from)
_FALLBACK_STATES: dict[str, float] = {State.HOLD: 0.5, State.DEAD: 0.5}


def _zone(name: str | None) -> str:
    """A customer's zone as the simulator can use it (unknown names count as UTC)."""
    try:
        return ZoneInfo(name).key if name else "UTC"
    except (ZoneInfoNotFoundError, ValueError):
        return "UTC"


def _shares(counter: Counter[str]) -> dict[str, float]:
    total = sum(counter.values())
    shares = {key: round(n / total, 6) for key, n in counter.most_common()}
    first = next(iter(shares))
    shares[first] = round(shares[first] + 1 - sum(shares.values()), 6)  # sum exactly 1
    return shares


def _first_failures(session: Session, since: datetime) -> list[tuple[DunningCase, ChargeAttempt]]:
    rows = session.execute(
        select(DunningCase, ChargeAttempt)
        .join(ChargeAttempt, ChargeAttempt.invoice_id == DunningCase.invoice_id)
        .where(DunningCase.opened_at >= since, ChargeAttempt.outcome != "succeeded")
        .order_by(DunningCase.id, ChargeAttempt.attempted_at, ChargeAttempt.id)
    ).all()
    first: dict[int, tuple[DunningCase, ChargeAttempt]] = {}
    for case, attempt in rows:
        first.setdefault(case.id, (case, attempt))
    return list(first.values())


def _declines(base: World, failures: Iterable[ChargeAttempt]) -> dict[str, Any]:
    codes: Counter[str] = Counter()
    networks: dict[str, Counter[str]] = {}
    for a in failures:
        code = (a.decline_code or a.failure_code or "generic_decline").strip().lower()
        codes[code] += 1
        if a.network_decline_code:
            networks.setdefault(code, Counter())[a.network_decline_code.strip().upper()] += 1
    known = {c.code: c for c in base.declines.codes}
    generic = known.get("generic_decline")
    rows = []
    for code, share in _shares(codes).items():
        row = known.get(code)
        seen = networks.get(code)
        network = seen.most_common(1)[0][0] if seen else (row.network_code if row else None)
        states = (
            dict(row.states) if row else (dict(generic.states) if generic else _FALLBACK_STATES)
        )
        rows.append({"code": code, "network_code": network, "share": share, "states": states})
    return {
        "source": f"{LEDGER}: first decline of each case; states as the base world",
        "codes": rows,
    }


def _solve_first_email(share: float, emails: float, decay: float) -> float:
    """The first-email response that makes ``share`` of customers update within ``emails``."""
    n = max(1, round(emails))

    def total(p: float) -> float:
        stay = 1.0
        for j in range(n):
            stay *= 1 - min(1.0, p * decay**j)
        return 1 - stay

    low, high = 0.0, 1.0
    for _ in range(50):
        mid = (low + high) / 2
        low, high = (mid, high) if total(mid) < share else (low, mid)
    return round(low, 4)


def _customers(
    session: Session, base: World, pairs: list[tuple[DunningCase, ChargeAttempt]]
) -> dict[str, Any]:
    case_ids = [case.id for case, _ in pairs]
    invoices = [case.invoice_id for case, _ in pairs]
    paid_by_customer = {
        invoice: at
        for invoice, at in session.execute(
            select(ChargeAttempt.invoice_id, ChargeAttempt.attempted_at).where(
                ChargeAttempt.invoice_id.in_(invoices), ChargeAttempt.triggered_by == "customer"
            )
        ).all()
    }
    emails: dict[int, list[datetime]] = {}
    for case_id, sent in session.execute(
        select(Notification.case_id, Notification.sent_at).where(
            Notification.case_id.in_(case_ids), Notification.sent_at.is_not(None)
        )
    ).all():
        if case_id is not None and sent is not None:
            emails.setdefault(case_id, []).append(sent)
    out = base.customers.model_dump()
    share = sum(1 for case, _ in pairs if case.invoice_id in paid_by_customer) / len(pairs)
    sent_per_case = statistics.mean(len(emails.get(i, [])) for i in case_ids) if emails else 4
    out["update_first_email"] = _solve_first_email(
        share, sent_per_case, base.customers.update_decay
    )
    delays = []
    for case, _ in pairs:
        at = paid_by_customer.get(case.invoice_id)
        before = [t for t in emails.get(case.id, []) if at is not None and t <= at]
        if at is not None and before:
            delays.append((at - max(before)).total_seconds() / 3600)
    if delays:
        out["delay_median_hours"] = max(0.1, round(statistics.median(delays), 2))
    out["source"] = f"{LEDGER}: customer payments {share:.1%} of cases; emails, delays"
    return out


def _updater(
    session: Session, base: World, pairs: list[tuple[DunningCase, ChargeAttempt]]
) -> dict[str, Any]:
    customers = {case.customer_id: case for case, _ in pairs if case.customer_id}
    refreshed: list[float] = []
    for customer_id, at in session.execute(
        select(PaymentMethod.customer_id, PaymentMethod.updated_by_network_at).where(
            PaymentMethod.customer_id.in_(list(customers)),
            PaymentMethod.updated_by_network_at.is_not(None),
        )
    ).all():
        case = customers.get(customer_id or "")
        if case is not None and at is not None and at > case.opened_at:
            refreshed.append((at - case.opened_at).total_seconds() / 86400)
    out = base.card_updater.model_dump()
    expired = sum(1 for _, a in pairs if (a.decline_code or "") == "expired_card")
    if refreshed and expired:
        out["expired_share"] = min(1.0, round(len(refreshed) / expired, 4))
        out["median_days"] = max(0.1, round(statistics.median(refreshed), 2))
        out["source"] = f"{LEDGER}: card-updater refreshes after the failure"
    return out


def estimate_world(session: Session, since: date, base: World) -> World:
    """The base world with the ledger's own population since ``since``."""
    start = datetime.combine(since, time(0), UTC)
    pairs = _first_failures(session, start)
    if not pairs:
        raise ValueError(f"no dunning case with a failed charge since {since}")
    failures = [a for _, a in pairs]
    data = base.model_dump(mode="json")
    data["name"] = f"ledger-{since.isoformat()}"
    data["description"] = f"{len(pairs)} cases of {LEDGER} since {since}"
    last = max(case.opened_at for case, _ in pairs)
    data["population"].update(
        source=f"{LEDGER}: amounts of the first failures",
        start=since.isoformat(),
        span_days=max(1, (last.date() - since).days + 1),
        amounts=[a.amount for a in failures if a.amount][:MAX_AMOUNTS],
    )
    brands = Counter((a.card_brand or "").lower() for a in failures if a.card_brand)
    if brands:
        data["brands"] = {"source": f"{LEDGER}: card brands", "shares": _shares(brands)}
    currencies = Counter((a.currency or "usd").lower() for a in failures)
    rates = {c: base.currencies.usd_rates.get(c, 1.0) for c in currencies}
    data["currencies"] = {
        "source": f"{LEDGER}: currencies; rates as the base world (1.0 if unknown)",
        "shares": _shares(currencies),
        "usd_rates": rates,
    }
    zones = Counter(
        _zone(tz)
        for (tz,) in session.execute(
            select(Customer.time_zone).where(
                Customer.id.in_([case.customer_id for case, _ in pairs if case.customer_id])
            )
        ).all()
    )
    if zones:
        data["time_zones"] = {
            "source": f"{LEDGER}: customers' time zones",
            "shares": _shares(zones),
        }
    data["declines"] = _declines(base, failures)
    data["customers"] = _customers(session, base, pairs)
    data["card_updater"] = _updater(session, base, pairs)
    return world_from_dict(data, source=LEDGER)
