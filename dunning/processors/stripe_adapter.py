"""The Stripe adapter: the only module that talks to the processor's API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import stripe

from dunning.settings import Settings


class ProcessorNotConfigured(RuntimeError):
    """No API key: the service can ingest webhooks but cannot call the processor."""


class TransientProcessorError(RuntimeError):
    """Timeout, connection error, 429 or 5xx: try the same call again later.

    It never counts as a card attempt."""


@dataclass(frozen=True)
class PayResult:
    """What paying an invoice did: the invoice afterwards and the charge it made."""

    paid: bool
    invoice: dict[str, Any]
    charge: dict[str, Any] | None
    error_code: str | None = None
    decline_code: str | None = None
    message: str | None = None


def processor_ref(invoice: dict[str, Any]) -> str:
    """A fingerprint of the invoice's payment attempts: it changes when a charge is made."""
    charge = invoice.get("charge")
    charge_id = charge.get("id") if isinstance(charge, dict) else charge
    intent = invoice.get("payment_intent")
    intent_id = intent.get("id") if isinstance(intent, dict) else intent
    return f"{invoice.get('attempt_count')}:{intent_id}:{charge_id}"


_TRANSIENT = (stripe.APIConnectionError, stripe.RateLimitError)


def _transient(exc: stripe.StripeError) -> bool:
    return isinstance(exc, _TRANSIENT) or (
        isinstance(exc, stripe.APIError) and (exc.http_status or 500) >= 500
    )


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

    def customer(self, customer_id: str) -> dict[str, Any]:
        return self.client.v1.customers.retrieve(customer_id).to_dict()

    def subscription(self, subscription_id: str) -> dict[str, Any]:
        return self.client.v1.subscriptions.retrieve(subscription_id).to_dict()

    def charge(self, charge_id: str) -> dict[str, Any]:
        return self.client.v1.charges.retrieve(charge_id).to_dict()

    def _charge_of(
        self, invoice: dict[str, Any], charge_id: str | None = None
    ) -> dict[str, Any] | None:
        charge = invoice.get("charge") or charge_id
        if isinstance(charge, str):
            charge = self.charge(charge)
        return charge if isinstance(charge, dict) else None

    def pay_invoice(self, invoice_id: str, idempotency_key: str) -> PayResult:
        """Charge the invoice now with the customer's default payment method."""
        try:
            invoice = self.client.v1.invoices.pay(
                invoice_id, options={"idempotency_key": idempotency_key}
            ).to_dict()
        except stripe.CardError as exc:
            err = exc.error
            invoice = self.invoice(invoice_id)
            return PayResult(
                paid=invoice.get("status") == "paid",
                invoice=invoice,
                charge=self._charge_of(invoice, getattr(err, "charge", None)),
                error_code=exc.code,
                decline_code=getattr(err, "decline_code", None),
                message=exc.user_message,
            )
        except stripe.StripeError as exc:
            if _transient(exc):
                raise TransientProcessorError(str(exc)) from exc
            invoice = self.invoice(invoice_id)  # e.g. "already paid": the invoice says what is true
            return PayResult(
                paid=invoice.get("status") == "paid",
                invoice=invoice,
                charge=self._charge_of(invoice),
                error_code=exc.code,
                message=exc.user_message,
            )
        charge = self._charge_of(invoice)
        failed = charge is not None and charge.get("status") == "failed"
        return PayResult(
            paid=invoice.get("status") == "paid",
            invoice=invoice,
            charge=charge,
            error_code=charge.get("failure_code") if failed and charge else None,
            message=charge.get("failure_message") if failed and charge else None,
        )

    def cancel_subscription(self, subscription_id: str, idempotency_key: str) -> None:
        """End the subscription now (the policy's end action)."""
        try:
            self.client.v1.subscriptions.cancel(
                subscription_id, options={"idempotency_key": idempotency_key}
            )
        except stripe.InvalidRequestError as exc:
            if exc.http_status != 404:  # already gone
                raise

    def mark_uncollectible(self, invoice_id: str, idempotency_key: str) -> dict[str, Any]:
        """Write the invoice off at the processor."""
        return self.client.v1.invoices.mark_uncollectible(
            invoice_id, options={"idempotency_key": idempotency_key}
        ).to_dict()
