"""``--from-ledger``: a world estimated from a hand-built ledger in real Postgres."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from dunning.backtest.ledger import estimate_world
from dunning.backtest.world import load_world
from dunning.cases.models import DunningCase
from dunning.db import session_scope
from dunning.ledger.models import ChargeAttempt, Customer

pytestmark = pytest.mark.usefixtures("clean_db")

JUNE = datetime(2026, 6, 3, 14, 0, tzinfo=UTC)
# (invoice, first decline, brand, amount, zone); a later decline of each case differs
CASES = [
    ("in_1", "insufficient_funds", "visa", 2900, "America/New_York"),
    ("in_2", "insufficient_funds", "mastercard", 2900, "America/New_York"),
    ("in_3", "do_not_honor", "visa", 29000, "Europe/Berlin"),
    ("in_4", "brand_new_code", "amex", 4900, "Not/AZone"),
]


def _ledger() -> None:
    with session_scope() as session:
        for i, (invoice, code, brand, amount, zone) in enumerate(CASES):
            customer = f"cus_{i}"
            opened = JUNE + timedelta(days=i)
            session.add(Customer(id=customer, time_zone=zone))
            session.add(
                DunningCase(invoice_id=invoice, customer_id=customer, state="open",
                            amount=amount, currency="usd", opened_at=opened)
            )  # fmt: skip
            for n, (at, outcome, decline) in enumerate(
                [(opened, "failed", code), (opened + timedelta(days=2), "failed", "lost_card")]
            ):
                session.add(
                    ChargeAttempt(
                        attempt_key=f"{invoice}:{n}", invoice_id=invoice, customer_id=customer,
                        attempted_at=at, amount=amount, currency="usd", outcome=outcome,
                        decline_code=decline, network_decline_code="51" if n == 0 else "41",
                        card_brand=brand, triggered_by="processor",
                    )
                )  # fmt: skip
        # a customer who paid on the page, and a case from before the date (left out)
        session.add(
            ChargeAttempt(
                attempt_key="in_1:page", invoice_id="in_1", customer_id="cus_0",
                attempted_at=JUNE + timedelta(days=3), amount=2900, currency="usd",
                outcome="succeeded", card_brand="visa", triggered_by="customer",
            )
        )  # fmt: skip
        session.add(
            DunningCase(invoice_id="in_old", state="closed", opened_at=JUNE - timedelta(days=40))
        )
        session.add(
            ChargeAttempt(
                attempt_key="in_old:0", invoice_id="in_old", attempted_at=JUNE - timedelta(days=40),
                outcome="failed", decline_code="fraudulent", card_brand="discover",
            )
        )  # fmt: skip


def test_the_world_has_the_ledger_decline_mix_brands_and_zones() -> None:
    _ledger()
    with session_scope() as session:
        world = estimate_world(session, date(2026, 6, 1), load_world())
    declines = {c.code: c.share for c in world.declines.codes}
    assert declines == {"insufficient_funds": 0.5, "do_not_honor": 0.25, "brand_new_code": 0.25}
    assert world.brands.shares == {"visa": 0.5, "mastercard": 0.25, "amex": 0.25}
    assert world.time_zones.shares == {"America/New_York": 0.5, "Europe/Berlin": 0.25, "UTC": 0.25}
    assert sorted(world.population.amounts) == [2900, 2900, 4900, 29000]
    assert world.population.start == date(2026, 6, 1)
    # a known code keeps the default world's hidden states; an unknown one gets generic's
    base = {c.code: c for c in load_world().declines.codes}
    rows = {c.code: c for c in world.declines.codes}
    assert rows["do_not_honor"].states == base["do_not_honor"].states
    assert rows["brand_new_code"].states == base["generic_decline"].states
    assert rows["insufficient_funds"].network_code == "51"
    # one case in four was paid by the customer on the page
    assert 0 < world.customers.update_first_email < load_world().customers.update_first_email * 3
    assert "ledger" in world.declines.source and "ledger" in world.brands.source


def test_an_empty_ledger_is_refused() -> None:
    with session_scope() as session, pytest.raises(ValueError, match="no dunning case"):
        estimate_world(session, date(2026, 6, 1), load_world())
