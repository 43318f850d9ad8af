"""The Stripe adapter: the only module that talks to the processor's API."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import stripe
from stripe.params import InvoicePayParams

from dunning.processors import stripe_objects as so
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


@dataclass(frozen=True)
class ChargedCard:
    """What :meth:`StripeAdapter.charged_card` read."""

    customer: dict[str, Any]
    subscription: dict[str, Any] | None
    payment_method: dict[str, Any] | None


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


def _call(request: Callable[[], Any]) -> dict[str, Any]:
    """Run one SDK call; a timeout, 429 or 5xx becomes ``TransientProcessorError``."""
    try:
        return dict(request().to_dict())
    except stripe.StripeError as exc:
        if _transient(exc):
            raise TransientProcessorError(str(exc)) from exc
        raise


class PaymentMethodNotOwned(ValueError):
    """The payment method belongs to another customer: never make it this one's default."""


@dataclass(frozen=True)
class DefaultCard:
    """The processor's objects after a card became the default, for the ledger."""

    customer: dict[str, Any]
    payment_method: dict[str, Any]
    subscription: dict[str, Any] | None


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

    def pay_invoice(
        self, invoice_id: str, idempotency_key: str, payment_method: str | None = None
    ) -> PayResult:
        """Charge the invoice now with ``payment_method`` (a backup card of the
        customer's), else the payment method Stripe charges by default."""
        params: InvoicePayParams = {"payment_method": payment_method} if payment_method else {}
        try:
            invoice = self.client.v1.invoices.pay(
                invoice_id, params=params, options={"idempotency_key": idempotency_key}
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

    def pause_subscription(
        self, subscription_id: str, behavior: str, idempotency_key: str
    ) -> dict[str, Any]:
        """Pause collection (the policy's end action): the customer keeps the account,
        Stripe stops charging; ``behavior`` is ``void`` or ``keep_as_draft``."""
        return _call(
            lambda: self.client.v1.subscriptions.update(
                subscription_id,
                params={"pause_collection": {"behavior": behavior}},
                options={"idempotency_key": idempotency_key},
            )
        )

    def resume_subscription(self, subscription_id: str, idempotency_key: str) -> dict[str, Any]:
        """Resume collection: Stripe's documented way is ``pause_collection=""``."""
        return _call(
            lambda: self.client.v1.subscriptions.update(
                subscription_id,
                params={"pause_collection": ""},
                options={"idempotency_key": idempotency_key},
            )
        )

    def mark_uncollectible(self, invoice_id: str, idempotency_key: str) -> dict[str, Any]:
        """Write the invoice off at the processor."""
        return self.client.v1.invoices.mark_uncollectible(
            invoice_id, options={"idempotency_key": idempotency_key}
        ).to_dict()

    # Self-serve card updates (dunning/links): card data goes from the browser to Stripe.js;
    # the service only ever sees SetupIntent and PaymentMethod ids (docs/architecture.md).

    def create_setup_intent(self, customer_id: str, metadata: dict[str, str]) -> dict[str, Any]:
        """A SetupIntent that Stripe.js confirms with the card the customer types."""
        return _call(
            lambda: self.client.v1.setup_intents.create(
                params={
                    "customer": customer_id,
                    "usage": "off_session",
                    "metadata": metadata,
                }
            )
        )

    def setup_intent(self, setup_intent_id: str) -> dict[str, Any]:
        return _call(lambda: self.client.v1.setup_intents.retrieve(setup_intent_id))

    def payment_method(self, payment_method_id: str) -> dict[str, Any]:
        return _call(lambda: self.client.v1.payment_methods.retrieve(payment_method_id))

    def payment_intent(self, payment_intent_id: str) -> dict[str, Any]:
        return _call(lambda: self.client.v1.payment_intents.retrieve(payment_intent_id))

    def invoice_payment_intents(self, invoice: dict[str, Any]) -> list[str]:
        """The payment intents that collect the invoice (the customer confirms one
        on-session after a 3-D Secure request): the one the invoice names (2017 shape),
        else those of its ``invoice_payment`` objects (current API)."""
        named = so.ref(invoice.get("payment_intent"))
        if named is not None:
            return [named]
        try:
            payments = _call(
                lambda: self.client.v1.invoice_payments.list(params={"invoice": invoice["id"]})
            )
        except stripe.InvalidRequestError:  # a compatible server without the endpoint
            return []
        found = [so.read_invoice_payment(p).payment_intent_id for p in payments["data"]]
        return [i for i in found if i]

    def needs_authentication(self, invoice: dict[str, Any]) -> bool:
        """The invoice's payment waits for the customer (3-D Secure): one of its payment
        intents is in ``requires_action`` (what ``invoice.payment_action_required`` says)."""
        return any(
            self.payment_intent(intent).get("status") == "requires_action"
            for intent in self.invoice_payment_intents(invoice)
        )

    def charged_card(self, customer_id: str, subscription_id: str | None) -> ChargedCard:
        """The customer, subscription and the card the subscription is charged with (its
        own default, else the customer's), read fresh at the processor."""
        customer = self.customer(customer_id)
        subscription = self.subscription(subscription_id) if subscription_id else None
        pm_id = (subscription and so.read_subscription(subscription).default_payment_method_id) or (
            so.read_customer(customer).default_payment_method_id
        )
        card = self.payment_method(pm_id) if pm_id else None
        return ChargedCard(customer=customer, subscription=subscription, payment_method=card)

    def make_default_card(
        self, customer_id: str, subscription_id: str | None, payment_method_id: str
    ) -> DefaultCard:
        """Make the card the default on the customer and on the subscription.

        Stripe charges a subscription's own default before the customer's, so both are
        set. Stripe attaches a SetupIntent's card to its customer; a compatible server
        that does not is made to here. A subscription object without the
        ``default_payment_method`` field (2017 shapes) has no default of its own: the
        customer's is the one charged, so there is nothing more to set.
        """
        pm = self.payment_method(payment_method_id)
        owner = pm.get("customer")
        owner_id = owner.get("id") if isinstance(owner, dict) else owner
        if owner_id is None:
            pm = _call(
                lambda: self.client.v1.payment_methods.attach(
                    payment_method_id, params={"customer": customer_id}
                )
            )
        elif owner_id != customer_id:
            raise PaymentMethodNotOwned(f"{payment_method_id} belongs to another customer")
        customer = _call(
            lambda: self.client.v1.customers.update(
                customer_id,
                params={"invoice_settings": {"default_payment_method": payment_method_id}},
            )
        )
        subscription = None
        if subscription_id:
            subscription = self.subscription(subscription_id)
            if "default_payment_method" in subscription:
                subscription = _call(
                    lambda: self.client.v1.subscriptions.update(
                        subscription_id, params={"default_payment_method": payment_method_id}
                    )
                )
        return DefaultCard(customer=customer, payment_method=pm, subscription=subscription)

    def billing_portal_session(self, customer_id: str, return_url: str) -> dict[str, Any]:
        """A Billing Portal session that opens straight on updating the payment method
        and comes back to ``return_url`` when done."""
        return _call(
            lambda: self.client.v1.billing_portal.sessions.create(
                params={
                    "customer": customer_id,
                    "return_url": return_url,
                    "flow_data": {
                        "type": "payment_method_update",
                        "after_completion": {
                            "type": "redirect",
                            "redirect": {"return_url": return_url},
                        },
                    },
                }
            )
        )
