"""The demo sandbox: a local Stripe-compatible server wired to the webhook endpoint,
with a few customers, one of whose cards fails, so a case opens within a minute."""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import stripe

SANDBOX_PORT = 8420
DEMO_API_KEY = "sk_test_demo"
GOOD_CARD = "4242424242424242"
FAILING_CARD = "4000000000000341"  # attaches, then every charge is declined

DEMO_CUSTOMERS = [
    ("ada@example.com", "Ada Lovelace", "Europe/London", "en", GOOD_CARD),
    ("grace@example.com", "Grace Hopper", "America/New_York", "en", FAILING_CARD),
    ("wei@example.com", "Li Wei", "Asia/Shanghai", "zh-CN", GOOD_CARD),
]
# Phones for SMS steps (555-01xx numbers are reserved for fiction); texts land in /outbox.
DEMO_PHONES = {"grace@example.com": "+12125550147", "ada@example.com": "+447700900123"}


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_sandbox(data_dir: Path, port: int = SANDBOX_PORT) -> subprocess.Popen[bytes]:
    """Start localstripe on loopback with its state in the data folder."""
    if _port_open(port):
        raise RuntimeError(f"port {port} is in use; stop what runs there or set DUNNING_DEMO=false")
    log = (data_dir / "sandbox.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dunning.sandbox",
            "--port",
            str(port),
            "--state",
            str(data_dir / "sandbox.pickle"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 15
    while not _port_open(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the Stripe sandbox did not start; see {data_dir / 'sandbox.log'}")
        time.sleep(0.1)
    return proc


def webhook_secret(data_dir: Path) -> str:
    """A signing secret for the sandbox, kept in the data folder across restarts."""
    path = data_dir / "sandbox-webhook-secret"
    if not path.exists():
        path.write_text("whsec_" + secrets.token_hex(16))
    return path.read_text().strip()


def register_webhook(api_base: str, url: str, secret: str) -> None:
    """Point the sandbox's webhooks at our endpoint, signed with ``secret``."""
    httpx.post(
        f"{api_base}/_config/webhooks/dunning", data={"url": url, "secret": secret}
    ).raise_for_status()


def seed(api_base: str) -> int:
    """Create the demo customers and subscriptions once; return how many were created."""
    client = stripe.StripeClient(DEMO_API_KEY, base_addresses={"api": api_base})
    existing = {c.email for c in client.v1.customers.list(params={"limit": 100}).data}
    plan_id = "demo-pro-monthly"
    try:
        client.v1.plans.retrieve(plan_id)
    except stripe.InvalidRequestError:
        product = client.v1.products.create(params={"name": "Pro (demo)"})
        client.v1.plans.create(
            params={
                "id": plan_id,
                "amount": 4900,
                "currency": "usd",
                "interval": "month",
                "product": product.id,
                "nickname": "Pro monthly",
            }
        )
    created = 0
    for email, name, tz, locale, number in DEMO_CUSTOMERS:
        if email in existing:
            continue
        customer = client.v1.customers.create(
            params={
                "email": email,
                "name": name,
                **({"phone": DEMO_PHONES[email]} if email in DEMO_PHONES else {}),
                "preferred_locales": [locale],
                "metadata": {"time_zone": tz, "segment": "demo"},
            }
        )
        pm = client.v1.payment_methods.create(
            params={
                "type": "card",
                "card": {"number": number, "exp_month": 12, "exp_year": 2030, "cvc": "123"},
            }
        )
        client.v1.payment_methods.attach(pm.id, params={"customer": customer.id})
        client.v1.customers.update(
            customer.id, params={"invoice_settings": {"default_payment_method": pm.id}}
        )
        client.v1.subscriptions.create(
            params={"customer": customer.id, "items": [{"plan": plan_id}]}
        )
        created += 1
    return created
