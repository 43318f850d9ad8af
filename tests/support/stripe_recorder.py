"""A recording proxy on loopback in front of localstripe, for what localstripe lacks.

It forwards every request to localstripe and records it, and speaks these parts of
Stripe's documented API itself (https://docs.stripe.com/api):

- ``POST /v1/subscriptions/{id}`` with ``pause_collection[behavior]`` (``void``,
  ``keep_as_draft``, ``mark_uncollectible``) or ``pause_collection=""`` (resume):
  answered here with the subscription, whose ``pause_collection`` is
  ``{"behavior", "resumes_at": null}`` or ``null``, in every later read too; a repeated
  ``Idempotency-Key`` gets the first answer again.
- ``POST /v1/invoices/{id}/pay`` with ``payment_method``: that payment method is
  charged (localstripe only charges the customer's default: the proxy makes it the
  default for the one call and puts the old default back).
- Charges carry ``payment_method_details.card`` (brand, last4, fingerprint, expiry),
  and a charge of a card listed in ``declines`` says why, as an issuer decline does:
  ``outcome = {"type": "issuer_declined", "reason": code}`` and the error's
  ``decline_code``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest

from dunning.settings import get_settings

_SUBSCRIPTION = re.compile(r"^/v1/subscriptions/(sub_\w+)$")
_PAY = re.compile(r"^/v1/invoices/(in_\w+)/pay$")
_FORWARDED = ("Authorization", "Idempotency-Key", "Stripe-Version", "Content-Type")


@dataclass(frozen=True)
class Recorded:
    """One request as the proxy received it."""

    method: str
    path: str
    form: dict[str, str]
    idempotency_key: str | None


@dataclass
class StripeRecorder:
    """The proxy's record and script; ``url`` is the API base to give the SDK."""

    upstream: str
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    declines: dict[str, str] = field(default_factory=dict)  # payment method id -> decline code
    paused: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    answered: dict[str, bytes] = field(default_factory=dict)  # idempotency key -> body
    lock: threading.RLock = field(default_factory=threading.RLock)

    def posts(self, path_pattern: str) -> list[Recorded]:
        """POST requests whose path matches ``path_pattern`` (a regular expression)."""
        with self.lock:
            return [
                r for r in self.requests if r.method == "POST" and re.search(path_pattern, r.path)
            ]


def _handler(rec: StripeRecorder, http: httpx.Client) -> type[BaseHTTPRequestHandler]:
    def call(method: str, path: str, headers: dict[str, str], form: list[tuple[str, str]]) -> Any:
        body = urlencode(form) if method == "POST" else None
        return http.request(method, rec.upstream + path, headers=headers, content=body)

    def read(path: str, headers: dict[str, str]) -> dict[str, Any]:
        out: dict[str, Any] = call("GET", path, headers, []).json()
        return out

    def card_of(pm_id: str, headers: dict[str, str]) -> dict[str, Any]:
        pm = read(f"/v1/payment_methods/{pm_id}", headers)
        card = pm.get("card") or {}
        keys = ("brand", "last4", "fingerprint", "exp_month", "exp_year")
        return {k: card.get(k) for k in keys}

    def enrich(obj: Any, headers: dict[str, str]) -> Any:
        """Charges get their card details and decline reason; subscriptions their pause."""
        if isinstance(obj, list):
            return [enrich(x, headers) for x in obj]
        if not isinstance(obj, dict):
            return obj
        out = {k: enrich(v, headers) for k, v in obj.items()}
        pm = out.get("payment_method")
        if out.get("object") == "charge" and isinstance(pm, str):
            out.setdefault("payment_method_details", {"type": "card", "card": card_of(pm, headers)})
            code = rec.declines.get(pm)
            if out.get("status") == "failed" and code:
                out["outcome"] = {
                    "type": "issuer_declined",
                    "reason": code,
                    "network_status": "declined_by_network",
                    "advice_code": None,
                    "network_advice_code": None,
                    "network_decline_code": None,
                }
        if out.get("object") == "subscription":
            out["pause_collection"] = rec.paused.get(out.get("id", ""))
        return out

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            """Quiet: the record is the log."""

        def _headers(self) -> dict[str, str]:
            return {k: v for k in _FORWARDED if (v := self.headers.get(k))}

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _answer(self, response: httpx.Response, headers: dict[str, str]) -> None:
            try:
                data = response.json()
            except ValueError:
                return self._send(response.status_code, response.content)
            error = data.get("error") if isinstance(data, dict) else None
            if isinstance(error, dict) and isinstance(error.get("charge"), str):
                charge = read(f"/v1/charges/{error['charge']}", headers)
                code = rec.declines.get(str(charge.get("payment_method")))
                if code:
                    error["decline_code"] = code
            self._send(response.status_code, json.dumps(enrich(data, headers)).encode())

        def do_GET(self) -> None:
            headers = self._headers()
            with rec.lock:
                rec.requests.append(Recorded("GET", self.path, {}, None))
                self._answer(call("GET", self.path, headers, []), headers)

        def do_DELETE(self) -> None:
            headers = self._headers()
            with rec.lock:
                rec.requests.append(Recorded("DELETE", self.path, {}, None))
                response = http.request("DELETE", rec.upstream + self.path, headers=headers)
                self._answer(response, headers)

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            pairs = parse_qsl(raw, keep_blank_values=True)
            form = dict(pairs)
            headers = self._headers()
            key = self.headers.get("Idempotency-Key")
            with rec.lock:
                rec.requests.append(Recorded("POST", self.path, form, key))
                subscription = _SUBSCRIPTION.match(self.path)
                pay = _PAY.match(self.path)
                if subscription and any(k.startswith("pause_collection") for k in form):
                    return self._pause(subscription.group(1), form, key, headers)
                if pay and form.get("payment_method"):
                    return self._pay_with(pay.group(1), form["payment_method"], headers)
                self._answer(call("POST", self.path, headers, pairs), headers)

        def _pause(
            self, sub_id: str, form: dict[str, str], key: str | None, headers: dict[str, str]
        ) -> None:
            if key and key in rec.answered:
                return self._send(200, rec.answered[key])
            behavior = form.get("pause_collection[behavior]")
            if form.get("pause_collection") == "" and behavior is None:
                rec.paused[sub_id] = None
            elif behavior in ("void", "keep_as_draft", "mark_uncollectible"):
                rec.paused[sub_id] = {"behavior": behavior, "resumes_at": None}
            else:
                error = {"type": "invalid_request_error", "param": "pause_collection[behavior]"}
                return self._send(400, json.dumps({"error": error}).encode())
            response = call("GET", f"/v1/subscriptions/{sub_id}", headers, [])
            if response.status_code != 200:
                return self._send(response.status_code, response.content)
            body = json.dumps(enrich(response.json(), headers)).encode()
            if key:
                rec.answered[key] = body
            self._send(200, body)

        def _pay_with(self, invoice_id: str, pm_id: str, headers: dict[str, str]) -> None:
            invoice = read(f"/v1/invoices/{invoice_id}", headers)
            customer = read(f"/v1/customers/{invoice['customer']}", headers)
            before = (customer.get("invoice_settings") or {}).get("default_payment_method")
            setting = "invoice_settings[default_payment_method]"
            plain = {k: v for k, v in headers.items() if k != "Idempotency-Key"}
            call("POST", f"/v1/customers/{invoice['customer']}", plain, [(setting, pm_id)])
            try:
                response = call("POST", f"/v1/invoices/{invoice_id}/pay", headers, [])
            finally:
                call(
                    "POST", f"/v1/customers/{invoice['customer']}", plain, [(setting, before or "")]
                )
            self._answer(response, headers)

    return Handler


@contextmanager
def stripe_recorder(upstream: str) -> Iterator[StripeRecorder]:
    """The proxy on a free loopback port in front of ``upstream`` (localstripe)."""
    rec = StripeRecorder(upstream=upstream.rstrip("/"))
    with httpx.Client(timeout=30) as http:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec, http))
        rec.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield rec
        finally:
            server.shutdown()
            server.server_close()
            thread.join(10)


@contextmanager
def serving_the_service(upstream: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StripeRecorder]:
    """The proxy, with the service's settings (and so its worker's) pointed at it."""
    with stripe_recorder(upstream) as recorder:
        monkeypatch.setenv("DUNNING_STRIPE_API_BASE", recorder.url)
        get_settings.cache_clear()
        yield recorder
    get_settings.cache_clear()
