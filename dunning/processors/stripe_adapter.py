"""The Stripe adapter: the only module that talks to the processor's API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import stripe

from dunning.settings import Settings


class ProcessorNotConfigured(RuntimeError):
    """No API key: the service can ingest webhooks but cannot call the processor."""


class StripeAdapter:
    """A thin wrapper around the official SDK, returning plain dicts."""

    def __init__(self, api_key: str, api_base: str | None = None) -> None:
        options: dict[str, Any] = {"max_network_retries": 2}
        if api_base:
            options["base_addresses"] = {"api": api_base.rstrip("/")}
        self.client = stripe.StripeClient(api_key, **options)

    @classmethod
    def from_settings(cls, settings: Settings) -> StripeAdapter:
        if not settings.stripe_api_key:
            raise ProcessorNotConfigured("DUNNING_STRIPE_API_KEY is not set")
        return cls(settings.stripe_api_key, settings.stripe_api_base)

    def open_invoices(self) -> Iterator[dict[str, Any]]:
        """Every open invoice (Stripe's past-due invoices are open ones with attempts)."""
        try:
            pages = self.client.v1.invoices.list(params={"status": "open", "limit": 100})
            for invoice in pages.auto_paging_iter():
                yield invoice.to_dict()
        except (stripe.InvalidRequestError, stripe.APIError):
            # Some Stripe-compatible servers cannot filter by status: filter here.
            pages = self.client.v1.invoices.list(params={"limit": 100})
            for invoice in pages.auto_paging_iter():
                data = invoice.to_dict()
                if data.get("status") == "open":
                    yield data

    def invoice(self, invoice_id: str) -> dict[str, Any]:
        return self.client.v1.invoices.retrieve(invoice_id).to_dict()

    def charge(self, charge_id: str) -> dict[str, Any]:
        return self.client.v1.charges.retrieve(charge_id).to_dict()
