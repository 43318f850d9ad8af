"""Browser sessions of the console and the dashboard: a signed, expiring cookie.

The cookie names an API key by its row id and carries the CSRF token of the forms;
it never holds the key. Why signed rather than stored: there is no session table to
clean up, and the key row is read again on every request, so revoking a key ends its
sessions at once. Why the CSRF token lives in the cookie: a form must send the same
value, which another site can neither read (HttpOnly, SameSite=Lax) nor guess.

A visitor who has not logged in gets an anonymous session (no key) so that the login
form carries a CSRF token too; logging in issues a new token.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session

from dunning.admin.actors import Actor
from dunning.admin.models import ApiKey, Role
from dunning.links.tokens import link_secret
from dunning.settings import Settings

COOKIE = "dunning_session"
MAX_AGE = 8 * 3600  # seconds: a working day, then log in again
_SALT = "dunning.admin.session.v1"  # separates these signatures from the customer links'
_MAX_COOKIE_CHARS = 1024


class SessionRefused(Exception):
    """No usable session; ``reason`` is ``missing``, ``expired``, ``invalid`` or ``revoked``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SessionData:
    """What the cookie says: the CSRF token and, once logged in, the key's row id."""

    csrf: str
    key_id: int | None = None


def _signer(settings: Settings) -> URLSafeTimedSerializer:
    """Signed with the service's link secret under a salt of its own (another key)."""
    return URLSafeTimedSerializer(link_secret(settings), salt=_SALT)


def new_session(key_id: int | None = None) -> SessionData:
    """A fresh session with a new CSRF token (anonymous when ``key_id`` is None)."""
    return SessionData(csrf=secrets.token_urlsafe(32), key_id=key_id)


def dump_session(data: SessionData, settings: Settings) -> str:
    """The cookie value: the data, signed and time-stamped."""
    payload: dict[str, Any] = {"c": data.csrf}
    if data.key_id is not None:
        payload["k"] = data.key_id
    return str(_signer(settings).dumps(payload))


def load_session(value: str | None, settings: Settings, max_age: int = MAX_AGE) -> SessionData:
    """The data of a cookie signed here less than ``max_age`` seconds ago."""
    if not value:
        raise SessionRefused("missing")
    if len(value) > _MAX_COOKIE_CHARS:
        raise SessionRefused("invalid")
    try:
        payload = _signer(settings).loads(value, max_age=max_age)
    except SignatureExpired:
        raise SessionRefused("expired") from None
    except BadSignature:
        raise SessionRefused("invalid") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("c"), str):
        raise SessionRefused("invalid")
    key_id = payload.get("k")
    if key_id is not None and (not isinstance(key_id, int) or isinstance(key_id, bool)):
        raise SessionRefused("invalid")
    return SessionData(csrf=payload["c"], key_id=key_id)


def csrf_matches(data: SessionData, sent: str | None) -> bool:
    """Whether a form sent this session's CSRF token (compared in constant time)."""
    return bool(sent) and hmac.compare_digest(data.csrf.encode(), str(sent).encode())


def session_actor(session: Session, data: SessionData) -> Actor:
    """The actor of a logged-in session whose key is still live."""
    if data.key_id is None:
        raise SessionRefused("missing")
    row = session.scalars(
        select(ApiKey).where(ApiKey.id == data.key_id, ApiKey.revoked_at.is_(None))
    ).one_or_none()
    if row is None:
        raise SessionRefused("revoked")
    return Actor(key_id=row.id, name=row.name, role=Role(row.role))


def cookie_options(secure: bool) -> dict[str, Any]:
    """How the cookie is set: whole site, HttpOnly, SameSite=Lax, Secure over HTTPS.

    Lax (not Strict) so a link from an alert email or a chat opens the console logged
    in; cross-site POSTs still arrive without the cookie, and every POST checks CSRF.
    """
    return {
        "max_age": MAX_AGE,
        "path": "/",
        "httponly": True,
        "samesite": "lax",
        "secure": secure,
    }
