"""Customers and subscriptions on the localstripe sandbox, through the official SDK."""

from __future__ import annotations

import uuid

import stripe

FAILING_CARD = "4000000000000341"  # attaches, then every charge is declined
GOOD_CARD = "4242424242424242"
API_KEY = "sk_test_sandbox"


def client(base: str) -> stripe.StripeClient:
    return stripe.StripeClient(API_KEY, base_addresses={"api": base})


def add_card(
    sdk: stripe.StripeClient, customer_id: str, number: str, expires: tuple[int, int] = (12, 2031)
) -> str:
    """Attach a card expiring (month, year) and make it the customer's default; its id."""
    month, year = expires
    pm = sdk.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": number, "exp_month": month, "exp_year": year, "cvc": "123"},
        }
    )
    sdk.v1.payment_methods.attach(pm.id, params={"customer": customer_id})
    sdk.v1.customers.update(
        customer_id, params={"invoice_settings": {"default_payment_method": pm.id}}
    )
    return str(pm.id)


def subscribe(
    sdk: stripe.StripeClient,
    card: str,
    time_zone: str = "America/New_York",
    expires: tuple[int, int] = (12, 2031),
) -> tuple[str, str]:
    """A customer with ``card`` (expiring (month, year)) as default, on a $49 monthly plan."""
    tag = uuid.uuid4().hex[:8]
    customer = sdk.v1.customers.create(
        params={
            "email": f"{tag}@example.com",
            "name": f"Customer {tag}",
            "metadata": {"time_zone": time_zone},
        }
    )
    add_card(sdk, customer.id, card, expires)
    product = sdk.v1.products.create(params={"name": f"Pro {tag}"})
    plan = sdk.v1.plans.create(
        params={
            "id": f"pro-{tag}",
            "amount": 4900,
            "currency": "usd",
            "interval": "month",
            "product": product.id,
        }
    )
    sub = sdk.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"plan": plan.id}]}
    )
    return str(customer.id), str(sub.id)


def charges_of(sdk: stripe.StripeClient, customer_id: str) -> list[dict[str, object]]:
    """Every charge made on the customer, as the sandbox recorded it."""
    return [
        c.to_dict()
        for c in sdk.v1.charges.list(params={"limit": 100}).auto_paging_iter()
        if c.customer == customer_id
    ]
