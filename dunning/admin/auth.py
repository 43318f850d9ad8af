"""Who may call what: the one API-key check, used by the API guard and the dashboard.

``ops`` keys may change things; read endpoints and the dashboard accept ``ops`` and
``finance``. Why one function: the role rule lives here only, so the dashboard's login
cannot drift from what ``/api/reports`` accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from dunning.admin.actors import Actor
from dunning.admin.keys import authenticate
from dunning.admin.models import ROLES, Role
from dunning.db import session_scope

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer dk_…`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: dk_…`")

READ_ROLES = (Role.OPS, Role.FINANCE)
CHANGE_ROLES = (Role.OPS,)


class KeyRefused(Exception):
    """A key that may not do this; ``status`` is 401 (no live key) or 403 (wrong role)."""

    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.status = http_status
        self.message = message


def check_key(key: str | None, allowed: Collection[Role]) -> Actor:
    """The actor of ``key`` if it is live and has one of the ``allowed`` roles.

    Raises ``KeyRefused``: 401 when the key is missing, unknown or revoked, 403 when its
    role is not allowed.
    """
    if not key:
        raise KeyRefused(
            status.HTTP_401_UNAUTHORIZED,
            "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key'",
        )
    with session_scope() as session:
        actor = authenticate(session, key.strip())
    if actor is None:
        raise KeyRefused(status.HTTP_401_UNAUTHORIZED, "unknown or revoked API key")
    if actor.role not in allowed:
        raise KeyRefused(
            status.HTTP_403_FORBIDDEN,
            f"API key {actor.name!r} has role {actor.role.value!r}; "
            f"this needs {' or '.join(sorted(allowed))}",
        )
    return actor


def header_key(headers: Mapping[str, str]) -> str | None:
    """The key sent as ``Authorization: Bearer`` (first) or ``X-API-Key``, as the API reads it."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return headers.get("x-api-key") or None


def require_role(*roles: Role) -> Callable[..., Actor]:
    """A dependency that returns the caller's ``Actor`` if its key has one of ``roles``.

    401 when the key is missing, unknown or revoked; 403 when its role is not allowed.
    """
    if not roles or any(role not in ROLES for role in roles):
        raise ValueError(f"roles must be among {ROLES}, got {roles}")
    allowed = frozenset(roles)

    def guard(
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        x_api_key: Annotated[str | None, Depends(_header)],
    ) -> Actor:
        try:
            return check_key(bearer.credentials if bearer is not None else x_api_key, allowed)
        except KeyRefused as exc:
            unauthorized = exc.status == status.HTTP_401_UNAUTHORIZED
            headers = {"WWW-Authenticate": "Bearer"} if unauthorized else None
            raise HTTPException(exc.status, detail=exc.message, headers=headers) from exc

    return guard


require_ops = require_role(*CHANGE_ROLES)
"""Endpoints that change something."""

require_reader = require_role(*READ_ROLES)
"""Endpoints that only read."""

OpsActor = Annotated[Actor, Depends(require_ops)]
ReaderActor = Annotated[Actor, Depends(require_reader)]
