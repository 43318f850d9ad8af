"""A small Twilio on loopback: the Messages API as documented, recording what it receives.

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` with HTTP basic auth
(account sid : auth token) and form fields ``To``, ``From`` (or
``MessagingServiceSid``) and ``Body``; answers ``201`` with the message resource
(``sid`` ``SM`` + 32 hex, ``status`` ``queued``), or Twilio's error document
(``{"code", "message", "more_info", "status"}``): 401 (code 20003) for wrong
credentials, 400 for a missing field (21604 To, 21602 Body) or an invalid number
(21211), and whatever a test scripts per number in ``fail`` (e.g. 503, or 400 with
21610 for a number that replied STOP at Twilio).
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

from tests.support.smtp import environment

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test_auth_token_0123456789abcdef"
FROM_NUMBER = "+15005550006"
_ERRORS = {
    20003: "Authenticate",
    21211: "The 'To' number {to} is not a valid phone number.",
    21602: "Message body is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
}


@dataclass
class FakeTwilio:
    """What the server received (accepted messages only in ``messages``) and its script."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    fail: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # To -> (status, code)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def to(self, number: str) -> list[dict[str, str]]:
        with self.lock:
            return [m for m in self.messages if m["To"] == number]


def _handler(fake: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
            with fake.lock:
                fake.requests.append(
                    {"path": self.path, "form": form, "auth": self.headers.get("Authorization")}
                )
            expected = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
            if self.path != f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json":
                return self._error(404, 20404, "The requested resource was not found")
            if self.headers.get("Authorization") != f"Basic {expected}":
                return self._error(401, 20003)
            if self.headers.get("Content-Type", "").split(";")[0] != (
                "application/x-www-form-urlencoded"
            ):
                return self._error(400, 21602)
            to = form.get("To", "")
            if not to:
                return self._error(400, 21604)
            if not form.get("Body"):
                return self._error(400, 21602)
            if not to.startswith("+") or not to[1:].isdigit():
                return self._error(400, 21211, to)
            with fake.lock:
                scripted = fake.fail.get(to)
            if scripted is not None:
                status, code = scripted
                return self._error(status, code, to)
            sid = "SM" + uuid.uuid4().hex
            with fake.lock:
                fake.messages.append({**form, "sid": sid})
            self._json(
                201,
                {
                    "sid": sid,
                    "account_sid": ACCOUNT_SID,
                    "to": to,
                    "from": form.get("From"),
                    "messaging_service_sid": form.get("MessagingServiceSid"),
                    "body": form["Body"],
                    "status": "queued",
                    "num_segments": "1",
                    "direction": "outbound-api",
                    "api_version": "2010-04-01",
                    "error_code": None,
                    "error_message": None,
                    "uri": f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{sid}.json",
                },
            )

        def _error(self, status: int, code: int | None, to: str = "") -> None:
            message = _ERRORS.get(code or 0, "Service unavailable").format(to=to)
            self._json(
                status,
                {
                    "code": code,
                    "message": message,
                    "more_info": f"https://www.twilio.com/docs/errors/{code}",
                    "status": status,
                },
            )

        def _json(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            return

    return Handler


@contextmanager
def fake_twilio() -> Iterator[FakeTwilio]:
    """The fake on a free loopback port, with the service's SMS settings pointed at it."""
    fake = FakeTwilio()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    settings = {
        "DUNNING_SMS_ACCOUNT_SID": ACCOUNT_SID,
        "DUNNING_SMS_AUTH_TOKEN": AUTH_TOKEN,
        "DUNNING_SMS_FROM": FROM_NUMBER,
        "DUNNING_SMS_BASE_URL": fake.url,
    }
    try:
        with environment(**settings):
            yield fake
    finally:
        server.shutdown()
        server.server_close()
