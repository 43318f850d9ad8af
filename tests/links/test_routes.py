"""The pay routes over HTTP against the real web app: rate limits, refusing a foreign
SetupIntent, and the Billing Portal branch (a recording HTTP server stands in for
Stripe's portal endpoint, which localstripe lacks; the return path uses localstripe)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from dunning.cases.models import CaseState, DunningCase
from dunning.db import session_scope
from dunning.events.reconcile import reconcile
from dunning.ledger import apply
from dunning.ledger.models import Customer, Subscription
from dunning.links import ratelimit, tokens
from dunning.processors import stripe_objects as so
from dunning.processors.stripe_adapter import StripeAdapter
from dunning.settings import get_settings
from tests.support import sandbox
from tests.support.ledger import all_handled, rows, scalar, wait_until
from tests.support.servers import ThrowawayRedis, WebServer


@contextmanager
def _serve(monkeypatch: pytest.MonkeyPatch, **env: str) -> Iterator[WebServer]:
    from dunning.app import create_app

    for name, value in env.items():
        monkeypatch.setenv(f"DUNNING_{name.upper()}", value)
    get_settings.cache_clear()
    app = create_app()
    with WebServer(app) as server:
        monkeypatch.setenv("DUNNING_PUBLIC_URL", server.url)
        get_settings.cache_clear()
        app.settings.public_url = server.url
        yield server
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_limits(redis_server: ThrowawayRedis) -> None:
    ratelimit.reset(redis_server.url)


def _open_case(base: str) -> tuple[str, int]:
    sdk = sandbox.client(base)
    customer_id, _ = sandbox.subscribe(sdk, sandbox.FAILING_CARD)
    reconcile(StripeAdapter(sandbox.API_KEY, base))
    wait_until(all_handled, what="reconciled events applied")
    return customer_id, int(
        scalar("SELECT id FROM dunning_cases WHERE customer_id = :c", c=customer_id)
    )


def test_views_and_posts_are_rate_limited_per_ip_and_token(
    clean_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _serve(monkeypatch, link_rate_limit="3", link_rate_window_seconds="60") as web:
        codes = [httpx.get(f"{web.url}/pay/not-a-token").status_code for _ in range(4)]
        assert codes == [404, 404, 404, 429]
        limited = httpx.get(f"{web.url}/pay/another-token")  # same IP, other token
        assert limited.status_code == 429 and "Too many attempts" in limited.text
        assert limited.headers["retry-after"] == "60"
        posts = [
            httpx.post(f"{web.url}/pay/t/card", data={"setup_intent": "seti_1"}).status_code
            for _ in range(4)
        ]
        assert posts == [404, 404, 404, 429]  # posts have their own window


def test_a_setup_intent_of_another_customer_is_refused(
    processor: str, clean_db: None, celery_worker: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk = sandbox.client(processor)
    customer_id, case_id = _open_case(processor)
    other, _ = sandbox.subscribe(sdk, sandbox.GOOD_CARD)
    intent = sdk.v1.setup_intents.create(
        params={"customer": other, "metadata": {"dunning_case_id": str(case_id)}}
    )
    confirmed = httpx.post(  # what Stripe.js does in the other customer's browser
        f"{processor}/v1/setup_intents/{intent.id}/confirm",
        json={
            "key": "pk_test_x",
            "client_secret": intent.client_secret,
            "payment_method_data": {
                "type": "card",
                "card": {
                    "number": sandbox.GOOD_CARD,
                    "exp_month": "1",
                    "exp_year": "2033",
                    "cvc": "123",
                },
            },
        },
    )
    assert confirmed.json()["status"] == "succeeded"
    with _serve(monkeypatch, stripe_publishable_key="pk_test_x") as web:
        token = tokens.make_link(case_id, customer_id, None).rsplit("/", 1)[1]
        for setup_intent in (intent.id, "seti_doesnotexist", "not-an-id"):
            answer = httpx.post(f"{web.url}/pay/{token}/card", data={"setup_intent": setup_intent})
            assert answer.status_code == 303
            assert answer.headers["location"] == f"/pay/{token}?result=not_saved"
    assert len(sandbox.charges_of(sdk, customer_id)) == 1  # only the original failure
    assert scalar("SELECT state FROM dunning_cases WHERE id = :c", c=case_id) == "open"
    assert scalar("SELECT count(*) FROM case_events WHERE case_id = :c", c=case_id) == 0


class _Recorder(BaseHTTPRequestHandler):
    """Answers like Stripe's POST /v1/billing_portal/sessions and keeps each request."""

    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.requests.append({"path": self.path, "form": parse_qs(body), "headers": self.headers})
        payload = {
            "id": "bps_recorded",
            "object": "billing_portal.session",
            "url": "https://billing.stripe.test/p/session/bps_recorded",
        }
        raw = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_portal_mode_redirects_to_a_payment_method_update_session(
    clean_db: None, recorder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id = _case(CaseState.OPEN, "cus_portal")
    env = {"update_mode": "portal", "stripe_api_key": "sk_test_portal", "stripe_api_base": recorder}
    with _serve(monkeypatch, **env) as web:
        token = tokens.make_link(case_id, "cus_portal", 55).rsplit("/", 1)[1]
        answer = httpx.get(f"{web.url}/pay/{token}")
    assert answer.status_code == 303
    assert answer.headers["location"] == "https://billing.stripe.test/p/session/bps_recorded"
    [request] = _Recorder.requests
    done = f"{web.url}/pay/{token}/done"
    assert request["path"] == "/v1/billing_portal/sessions"
    assert request["headers"]["Authorization"] == "Bearer sk_test_portal"
    assert request["form"] == {
        "customer": ["cus_portal"],
        "return_url": [done],
        "flow_data[type]": ["payment_method_update"],
        "flow_data[after_completion][type]": ["redirect"],
        "flow_data[after_completion][redirect][return_url]": [done],
    }
    [event] = rows(
        "SELECT kind, notification_id, details FROM case_events WHERE case_id = :c", c=case_id
    )
    assert event == {
        "kind": "link_opened",
        "notification_id": 55,
        "details": {"mode": "portal", "portal_session": "bps_recorded"},
    }


def test_back_from_the_portal_with_a_new_card_pays_at_once(
    processor: str, clean_db: None, celery_worker: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk = sandbox.client(processor)
    customer_id, case_id = _open_case(processor)
    with _serve(monkeypatch, update_mode="portal"):
        done = tokens.make_link(case_id, customer_id, None) + "/done"
        unchanged = httpx.get(done)
        assert unchanged.status_code == 200 and "Your card wasn&#39;t changed" in unchanged.text
        assert len(sandbox.charges_of(sdk, customer_id)) == 1  # the declined card is not retried

        sandbox.add_card(sdk, customer_id, sandbox.GOOD_CARD)  # what the portal does
        paid = httpx.get(done)
        assert paid.status_code == 200 and "Thank you, you&#39;re all set" in paid.text
    [invoice] = sdk.v1.invoices.list(params={"customer": customer_id}).data
    assert invoice.status == "paid"
    [case] = rows("SELECT state, recovered_by FROM dunning_cases WHERE id = :c", c=case_id)
    assert case == {"state": "recovered", "recovered_by": "customer"}
    kinds = rows("SELECT kind FROM case_events WHERE case_id = :c ORDER BY id", c=case_id)
    assert [k["kind"] for k in kinds] == ["card_updated", "payment_attempted"]


def _case(state: str, customer_id: str = "cus_direct") -> int:
    with session_scope() as session:
        case = DunningCase(
            invoice_id=f"in_{state}",
            customer_id=customer_id,
            state=state,
            amount=4900,
            currency="usd",
            opened_at=datetime.now(UTC),
        )
        session.add(case)
        session.flush()
        return case.id


def test_closed_cases_unreachable_processor_and_oversized_posts(
    clean_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    voided, open_case = _case(CaseState.VOIDED), _case(CaseState.OPEN)
    env = {"stripe_api_key": "sk_test_down", "stripe_api_base": "http://127.0.0.1:9"}
    with _serve(monkeypatch, **env) as web:
        closed = httpx.get(tokens.make_link(voided, "cus_direct", None))
        assert closed.status_code == 410 and "This link is no longer active" in closed.text
        down = httpx.get(tokens.make_link(open_case, "cus_direct", None))
        assert down.status_code == 503 and "Please try again shortly" in down.text
        huge = httpx.post(f"{web.url}/pay/x/card", content=b"setup_intent=" + b"a" * 10_000)
        assert huge.status_code == 413
        spanish = httpx.get(f"{web.url}/pay/nope", headers={"Accept-Language": "es-ES,es"})
        assert "Este enlace no es válido" in spanish.text
    for page in (closed, down, spanish):
        assert "49" not in page.text and "cus_direct" not in page.text
    assert scalar("SELECT count(*) FROM case_events") == 0


# Customer links (no case): renewal reminders and card-expiring notices.


def _subscriber(base: str) -> tuple[str, str]:
    """A paying customer at localstripe, and the same in the ledger (as webhooks would)."""
    sdk = sandbox.client(base)
    customer_id, sub_id = sandbox.subscribe(sdk, sandbox.GOOD_CARD)
    adapter = StripeAdapter(sandbox.API_KEY, base)
    customer = adapter.customer(customer_id)
    version = int(time.time())
    with session_scope() as session:
        apply.apply_customer(session, customer, version)
        apply.apply_subscription(session, adapter.subscription(sub_id), version)
        pm_id = so.read_customer(customer).default_payment_method_id
        assert pm_id is not None
        apply.apply_payment_method(session, adapter.payment_method(pm_id), version)
    return customer_id, sub_id


def _confirmed_intent(base: str, customer_id: str, metadata: dict[str, str]) -> str:
    """A SetupIntent confirmed with a good card, as Stripe.js does in the browser."""
    sdk = sandbox.client(base)
    intent = sdk.v1.setup_intents.create(params={"customer": customer_id, "metadata": metadata})
    confirmed = httpx.post(
        f"{base}/v1/setup_intents/{intent.id}/confirm",
        json={
            "key": "pk_test_x",
            "client_secret": intent.client_secret,
            "payment_method_data": {
                "type": "card",
                "card": {
                    "number": sandbox.GOOD_CARD,
                    "exp_month": "1",
                    "exp_year": "2033",
                    "cvc": "123",
                },
            },
        },
    )
    assert confirmed.json()["status"] == "succeeded"
    return str(intent.id)


def _customer_token(customer_id: str, notification_id: int | None = None) -> str:
    return tokens.make_customer_link(customer_id, notification_id).rsplit("/", 1)[1]


def test_a_customer_link_saves_only_its_own_setup_intent_and_charges_nothing(
    processor: str, clean_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk = sandbox.client(processor)
    customer_id, sub_id = _subscriber(processor)
    other_id, other_sub = _subscriber(processor)
    charges = len(sandbox.charges_of(sdk, customer_id))
    for_case = _confirmed_intent(processor, customer_id, {"dunning_case_id": "1"})
    for_other_sub = _confirmed_intent(processor, customer_id, {"dunning_subscription_id": "sub_x"})
    of_other = _confirmed_intent(processor, other_id, {"dunning_subscription_id": other_sub})
    good = _confirmed_intent(processor, customer_id, {"dunning_subscription_id": sub_id})
    with _serve(monkeypatch, stripe_publishable_key="pk_test_x") as web:
        token = _customer_token(customer_id)
        page = httpx.get(f"{web.url}/pay/{token}")
        assert page.status_code == 200 and "Save card" in page.text and "$49.00" in page.text
        for refused in (for_case, for_other_sub, of_other, "seti_doesnotexist", "not-an-id"):
            answer = httpx.post(f"{web.url}/pay/{token}/card", data={"setup_intent": refused})
            assert answer.status_code == 303
            assert answer.headers["location"] == f"/pay/{token}?result=not_saved"
        assert scalar("SELECT count(*) FROM audit_log") == 0
        for _ in range(2):  # posted twice (a double click, a resubmitted form)
            answer = httpx.post(f"{web.url}/pay/{token}/card", data={"setup_intent": good})
            assert answer.headers["location"] == f"/pay/{token}?result=saved"
        saved = httpx.get(f"{web.url}/pay/{token}?result=saved")
        assert "Your new card is saved" in saved.text
        assert "Visa ending in 4242 · Expires 01/33" in saved.text
        # A renewal SetupIntent does not pay a case either.
        case_id = _case(CaseState.OPEN, customer_id)
        case_token = tokens.make_link(case_id, customer_id, None).rsplit("/", 1)[1]
        answer = httpx.post(f"{web.url}/pay/{case_token}/card", data={"setup_intent": good})
        assert answer.headers["location"] == f"/pay/{case_token}?result=not_saved"
    new_pm = sdk.v1.setup_intents.retrieve(good).payment_method
    customer = sdk.v1.customers.retrieve(customer_id)
    assert customer.invoice_settings.default_payment_method == new_pm  # type: ignore[union-attr]
    assert sdk.v1.customers.retrieve(other_id).invoice_settings.default_payment_method != new_pm  # type: ignore[union-attr]
    assert len(sandbox.charges_of(sdk, customer_id)) == charges  # nothing charged
    [audit] = rows("SELECT actor, action, target_id, details FROM audit_log")
    assert audit["actor"] == f"customer:{customer_id}" and audit["target_id"] == customer_id
    assert audit["details"]["setup_intent"] == good
    assert audit["details"]["subscription"] == sub_id
    assert scalar("SELECT count(*) FROM case_events") == 0


def test_customer_links_to_nothing_show_a_clear_page_with_no_account_data(
    clean_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    with session_scope() as session:
        session.add_all(
            [
                Customer(id="cus_gone", email="gone@example.com", deleted=True),
                Customer(id="cus_canceled", email="canceled@example.com"),
                Subscription(
                    id="sub_canceled",
                    customer_id="cus_canceled",
                    status="canceled",
                    amount=4900,
                    currency="usd",
                    current_period_end=now,
                ),
            ]
        )
    env = {"stripe_api_key": "sk_test_down", "stripe_api_base": "http://127.0.0.1:9"}
    with _serve(monkeypatch, stripe_publishable_key="pk_test_x", **env):
        pages = {
            customer_id: httpx.get(tokens.make_customer_link(customer_id, None))
            for customer_id in ("cus_gone", "cus_canceled", "cus_unknown")
        }
        posted = httpx.post(
            tokens.make_customer_link("cus_canceled", None) + "/card",
            data={"setup_intent": "seti_1"},
        )
    assert pages["cus_gone"].status_code == 410
    assert pages["cus_canceled"].status_code == 410
    assert "This link is no longer active" in pages["cus_canceled"].text
    assert pages["cus_unknown"].status_code == 404
    assert posted.status_code == 410
    for page in (*pages.values(), posted):
        for leak in ("49", "cus_", "gone@", "canceled@", "sub_"):
            assert leak not in page.text


def test_portal_mode_for_a_customer_link(
    processor: str, clean_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk = sandbox.client(processor)
    customer_id, sub_id = _subscriber(processor)
    charges = len(sandbox.charges_of(sdk, customer_id))
    with _serve(monkeypatch, update_mode="portal"):
        done = tokens.make_customer_link(customer_id, None) + "/done"
        unchanged = httpx.get(done)
        assert unchanged.status_code == 200 and "Your card wasn&#39;t changed" in unchanged.text
        new_pm = sandbox.add_card(sdk, customer_id, sandbox.GOOD_CARD)  # what the portal does
        saved = httpx.get(done)
        assert saved.status_code == 200 and "Your card is saved" in saved.text
        again = httpx.get(done)
        assert "Your card wasn&#39;t changed" in again.text
    assert len(sandbox.charges_of(sdk, customer_id)) == charges
    assert (
        scalar("SELECT default_payment_method_id FROM customers WHERE id = :c", c=customer_id)
        == new_pm
    )
    [audit] = rows("SELECT actor, details FROM audit_log")
    assert audit["actor"] == f"customer:{customer_id}"
    assert audit["details"]["via"] == "billing_portal"
    assert audit["details"]["payment_method"] == new_pm
    assert audit["details"]["subscription"] == sub_id


def test_portal_mode_redirects_a_customer_link_to_a_portal_session(
    clean_db: None, recorder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope() as session:
        session.add_all(
            [
                Customer(id="cus_portal", email="p@example.com"),
                Subscription(
                    id="sub_portal",
                    customer_id="cus_portal",
                    status="active",
                    amount=4900,
                    currency="usd",
                    current_period_end=datetime.now(UTC) + timedelta(days=3),
                ),
            ]
        )
    env = {"update_mode": "portal", "stripe_api_key": "sk_test_portal", "stripe_api_base": recorder}
    with _serve(monkeypatch, **env) as web:
        token = _customer_token("cus_portal", 77)
        answer = httpx.get(f"{web.url}/pay/{token}")
    assert answer.status_code == 303
    assert answer.headers["location"] == "https://billing.stripe.test/p/session/bps_recorded"
    [request] = _Recorder.requests
    assert request["form"]["customer"] == ["cus_portal"]
    assert request["form"]["return_url"] == [f"{web.url}/pay/{token}/done"]
    assert scalar("SELECT count(*) FROM case_events") == 0


def test_customer_links_are_rate_limited_like_case_links(
    clean_db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _serve(monkeypatch, link_rate_limit="2", link_rate_window_seconds="60"):
        link = tokens.make_customer_link("cus_nobody", None)
        codes = [httpx.get(link).status_code for _ in range(3)]
        posts = [
            httpx.post(link + "/card", data={"setup_intent": "seti_1"}).status_code
            for _ in range(3)
        ]
    assert codes == [404, 404, 429]
    assert posts == [404, 404, 429]
