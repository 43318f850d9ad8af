"""``require_role``: the FastAPI guard of every admin and finance endpoint.

``ops`` keys may change things; read endpoints accept ``ops`` and ``finance``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from dunning.admin.actors import Actor
from dunning.admin.keys import authenticate
from dunning.admin.models import Role
from dunning.db import session_scope

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer dk_…`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="`X-API-Key: dk_…`")

READ_ROLES = (Role.OPS, Role.FINANCE)
CHANGE_ROLES = (Role.OPS,)


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=message, headers={"WWW-Authenticate": "Bearer"}
    )


def require_role(*roles: str) -> Callable[..., Actor]:
    """A dependency that returns the caller's ``Actor`` if its key has one of ``roles``.

    401 when the key is missing, unknown or revoked; 403 when its role is not allowed.
    """
    if not roles or any(role not in Role.ALL for role in roles):
        raise ValueError(f"roles must be among {Role.ALL}, got {roles}")
    allowed = frozenset(roles)

    def guard(
        bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        header_key: Annotated[str | None, Depends(_header)],
    ) -> Actor:
        key = bearer.credentials if bearer is not None else header_key
        if not key:
            raise _unauthorized(
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key'"
            )
        with session_scope() as session:
            actor = authenticate(session, key.strip())
        if actor is None:
            raise _unauthorized("unknown or revoked API key")
        if actor.role not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"API key {actor.name!r} has role {actor.role!r}; "
                f"this needs {' or '.join(sorted(allowed))}",
            )
        return actor

    return guard


require_ops = require_role(*CHANGE_ROLES)
"""Endpoints that change something."""

require_reader = require_role(*READ_ROLES)
"""Endpoints that only read."""

OpsActor = Annotated[Actor, Depends(require_ops)]
ReaderActor = Annotated[Actor, Depends(require_reader)]
