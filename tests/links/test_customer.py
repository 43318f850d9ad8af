"""What a customer link (no case) opens, read from the ledger: the renewal of the
subscription its email was about, the customer's open case instead, or nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dunning.cases.models import CaseState, DunningCase
from dunning.db import session_scope
from dunning.ledger.models import Customer, PaymentMethod, Subscription
from dunning.links import customer as links
from dunning.links.service import Card, LinkRefused
from dunning.links.tokens import CustomerLinkClaims, LinkClaims
from dunning.notify.models import Notification
from dunning.processors.stripe_adapter import StripeAdapter

NOW = datetime.now(UTC)
LATER = NOW + timedelta(days=14)
# Never called: every card these tests show is in the ledger.
NO_STRIPE = StripeAdapter("sk_test_unused", "http://127.0.0.1:9")


def _customer(
    customer_id: str = "cus_a",
    *,
    deleted: bool = False,
    time_zone: str | None = "America/Los_Angeles",
    card: tuple[int, int] = (12, 2031),
) -> None:
    with session_scope() as session:
        session.add(
            Customer(
                id=customer_id,
                email=f"{customer_id}@example.com",
                locale="es",
                time_zone=time_zone,
                default_payment_method_id=f"pm_{customer_id}",
                deleted=deleted,
            )
        )
        session.add(
            PaymentMethod(
                id=f"pm_{customer_id}",
                customer_id=customer_id,
                brand="visa",
                last4="4242",
                exp_month=card[0],
                exp_year=card[1],
            )
        )


def _subscription(
    sub_id: str,
    customer_id: str = "cus_a",
    *,
    renews: datetime | None = None,
    status: str = "active",
    cancel_at_period_end: bool = False,
    upcoming: tuple[int, datetime] | None = None,
) -> str:
    with session_scope() as session:
        session.add(
            Subscription(
                id=sub_id,
                customer_id=customer_id,
                status=status,
                plan_name="Pro",
                interval="year",
                interval_count=1,
                amount=49000,
                currency="usd",
                current_period_end=renews or NOW + timedelta(days=7),
                cancel_at_period_end=cancel_at_period_end,
                upcoming_amount=upcoming[0] if upcoming else None,
                upcoming_at=upcoming[1] if upcoming else None,
            )
        )
    return sub_id


def _notification(customer_id: str, sub_id: str | None) -> int:
    with session_scope() as session:
        row = Notification(
            dedupe_key=f"renewal:{sub_id}:{customer_id}",
            kind="renewal",
            template="renewal_reminder",
            customer_id=customer_id,
            subscription_id=sub_id,
        )
        session.add(row)
        session.flush()
        return row.id


def _case(sub_id: str, customer_id: str = "cus_a", state: str = CaseState.OPEN) -> int:
    with session_scope() as session:
        case = DunningCase(
            invoice_id=f"in_{sub_id}_{state}",
            customer_id=customer_id,
            subscription_id=sub_id,
            state=state,
            amount=49000,
            currency="usd",
            opened_at=NOW,
        )
        session.add(case)
        session.flush()
        return case.id


def _claims(notification_id: int | None = None, customer_id: str = "cus_a") -> CustomerLinkClaims:
    return CustomerLinkClaims(customer_id, notification_id, LATER)


def test_the_emailed_subscription_is_the_one_shown(clean_db: None) -> None:
    _customer()
    _subscription("sub_soon", renews=NOW + timedelta(days=2))
    emailed = _subscription("sub_later", renews=NOW + timedelta(days=30))
    notification = _notification("cus_a", emailed)
    assert links.resolve(_claims(notification)) == links.RenewalTarget(
        "cus_a", "sub_later", notification
    )


def test_without_an_email_the_subscription_renewing_next(clean_db: None) -> None:
    _customer()
    _subscription("sub_later", renews=NOW + timedelta(days=30))
    _subscription("sub_soon", renews=NOW + timedelta(days=2))
    _subscription("sub_gone", renews=NOW + timedelta(days=1), status="canceled")
    _subscription("sub_leaving", renews=NOW + timedelta(days=1), cancel_at_period_end=True)
    assert links.resolve(_claims()) == links.RenewalTarget("cus_a", "sub_soon", None)


def test_another_customers_notification_names_nothing(clean_db: None) -> None:
    _customer()
    _customer("cus_b")
    _subscription("sub_a")
    theirs = _notification("cus_b", _subscription("sub_b", "cus_b"))
    assert links.resolve(_claims(theirs)) == links.RenewalTarget("cus_a", "sub_a", theirs)


@pytest.mark.parametrize(
    ("status", "cancel_at_period_end"),
    [("canceled", False), ("incomplete_expired", False), ("unpaid", False), ("active", True)],
)
def test_a_subscription_that_does_not_renew_is_a_closed_link(
    clean_db: None, status: str, cancel_at_period_end: bool
) -> None:
    _customer()
    sub = _subscription("sub_a", status=status, cancel_at_period_end=cancel_at_period_end)
    _subscription("sub_other")  # renews, but the email was not about it
    with pytest.raises(LinkRefused) as refused:
        links.resolve(_claims(_notification("cus_a", sub)))
    assert refused.value.reason == "closed"


def test_deleted_unknown_and_subscriptionless_customers(clean_db: None) -> None:
    _customer("cus_deleted", deleted=True)
    _subscription("sub_d", "cus_deleted")
    _customer("cus_bare")
    for customer_id, reason in (
        ("cus_deleted", "closed"),
        ("cus_unknown", "invalid"),
        ("cus_bare", "closed"),
    ):
        with pytest.raises(LinkRefused) as refused:
            links.resolve(_claims(customer_id=customer_id))
        assert refused.value.reason == reason, customer_id


def test_an_open_case_of_the_emailed_subscription_is_opened_as_that_case(clean_db: None) -> None:
    _customer()
    sub = _subscription("sub_a")
    other = _subscription("sub_b")
    _case(sub, state=CaseState.RECOVERED)
    case_id = _case(sub)
    other_case = _case(other)
    notification = _notification("cus_a", sub)
    assert links.resolve(_claims(notification)) == LinkClaims(case_id, "cus_a", notification, LATER)
    # An email about sub_b opens sub_b's case; one about a third subscription, its renewal.
    about_b = _notification("cus_a", other)
    assert links.resolve(_claims(about_b)).case_id == other_case  # type: ignore[union-attr]
    third = _subscription("sub_c")
    about_c = _notification("cus_a", third)
    assert links.resolve(_claims(about_c)) == links.RenewalTarget("cus_a", third, about_c)
    # Without an email, the customer's oldest open case.
    assert links.resolve(_claims()) == LinkClaims(case_id, "cus_a", None, LATER)
    # Another customer's case is never reached.
    _customer("cus_b")
    _subscription("sub_x", "cus_b")
    assert isinstance(links.resolve(_claims(customer_id="cus_b")), links.RenewalTarget)


def test_the_renewal_view_uses_the_ledgers_date_amount_and_card(clean_db: None) -> None:
    renews = datetime(2027, 1, 10, 18, tzinfo=UTC)
    _customer(card=(12, 2026))
    _subscription("sub_a", renews=renews, upcoming=(51234, renews - timedelta(hours=1)))
    view = links.view_renewal(links.RenewalTarget("cus_a", "sub_a", None), NO_STRIPE)
    assert view.renews_at == renews and view.time_zone == "America/Los_Angeles"
    assert (view.amount, view.currency, view.locale) == (51234, "usd", "es")  # invoice.upcoming
    assert view.card == Card("visa", "4242", 12, 2026)
    assert view.card_expires_before_renewal


def test_an_upcoming_invoice_for_another_renewal_is_not_shown(clean_db: None) -> None:
    renews = NOW + timedelta(days=20)
    _customer()
    _subscription("sub_a", renews=renews, upcoming=(1, renews - timedelta(days=30)))
    view = links.view_renewal(links.RenewalTarget("cus_a", "sub_a", None), NO_STRIPE)
    assert view.amount == 49000 and not view.card_expires_before_renewal


def test_a_subscription_canceled_after_resolving_closes_the_view(clean_db: None) -> None:
    _customer()
    _subscription("sub_a")
    target = links.resolve(_claims())
    assert isinstance(target, links.RenewalTarget)
    with session_scope() as session:
        sub = session.get(Subscription, "sub_a")
        assert sub is not None
        sub.status = "canceled"
    with pytest.raises(LinkRefused):
        links.view_renewal(target, NO_STRIPE)


@pytest.mark.parametrize(
    ("card", "renews", "zone", "before"),
    [
        (Card("visa", "1", 3, 2026), datetime(2026, 4, 1, 12, tzinfo=UTC), "UTC", True),
        (Card("visa", "1", 3, 2026), datetime(2026, 3, 31, 12, tzinfo=UTC), "UTC", False),
        # 02:00 UTC on April 1 is still March 31 in Los Angeles: the card still works.
        (
            Card("visa", "1", 3, 2026),
            datetime(2026, 4, 1, 2, tzinfo=UTC),
            "America/Los_Angeles",
            False,
        ),
        (Card("visa", "1", 3, 2026), datetime(2026, 4, 1, 2, tzinfo=UTC), "Asia/Tokyo", True),
        (Card("visa", "1", None, None), datetime(2026, 4, 1, tzinfo=UTC), "UTC", False),
        (None, datetime(2026, 4, 1, tzinfo=UTC), "UTC", False),
    ],
)
def test_expires_before_the_renewal_in_the_customers_time_zone(
    card: Card | None, renews: datetime, zone: str, before: bool
) -> None:
    assert links.expires_before(card, renews, zone) is before
