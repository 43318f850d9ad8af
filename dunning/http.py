"""The HTTP boundary of the admin API and pages, shared by every router.

Parameter types refuse, with a 422, values the database or the date arithmetic cannot
hold (ids past ``bigint``, NUL in text, year 1 or 9999), so no route needs its own
checks; the handlers turn the database errors no route can prevent into clean answers:
a database that is down is a 503 to retry, not a 500.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import date, datetime
from typing import Annotated, Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.utils import is_body_allowed_for_status_code
from pydantic import AfterValidator, Field
from sqlalchemy import exc as sa
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)

BIGINT_MAX = 2**63 - 1
INTEGER_MAX = 2**31 - 1
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(3000, 1, 1)  # also the exclusive end of a period ending in 2999


def storable_text(value: str) -> bool:
    """Whether Postgres can hold ``value`` in a text column: no NUL and valid UTF-8 (JSON
    bodies may carry lone surrogates such as ``"\\ud800"``)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _text(value: str) -> str:
    if not storable_text(value):
        raise ValueError("must not contain NUL characters or invalid Unicode")
    return value


def _instant(value: datetime) -> datetime:
    if not FIRST_DAY.year <= value.year < LAST_DAY.year:
        raise ValueError(f"year must be between {FIRST_DAY.year} and {LAST_DAY.year - 1}")
    return value


DbText = Annotated[str, AfterValidator(_text)]
"""Text that can be stored and compared in Postgres."""

RowId = Annotated[int, Field(ge=1, le=BIGINT_MAX)]
"""A ``bigint`` primary key (case ids, policy ids)."""

Offset = Annotated[int, Field(ge=0, le=BIGINT_MAX)]
"""A SQL ``OFFSET``."""

Version = Annotated[int, Field(ge=1, le=INTEGER_MAX)]
"""A policy version (an ``integer`` column)."""

Day = Annotated[date, Field(ge=FIRST_DAY, le=LAST_DAY)]
"""A calendar day the reports can compute with (month arithmetic, time zones)."""

Instant = Annotated[datetime, AfterValidator(_instant)]
"""A moment the engine can add retry delays to and convert to any time zone."""


class SafeJSONResponse(JSONResponse):
    """JSON that always encodes: escaped to ASCII (an echoed lone surrogate cannot be
    UTF-8) and with non-finite numbers as strings (``NaN`` is not JSON)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(_finite(content), ensure_ascii=True, separators=(",", ":")).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _invalid(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    # A body that is not UTF-8 comes back as bytes in the error's input: show it replaced.
    errors = jsonable_encoder(exc.errors(), custom_encoder={bytes: _lenient_text})
    return SafeJSONResponse({"detail": errors}, status_code=422)


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not is_body_allowed_for_status_code(exc.status_code):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return SafeJSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)


def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("%s %s: database unavailable: %s", request.method, request.url.path, exc)
    return JSONResponse(
        {"detail": "the database is unavailable; retry later"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


def _bad_value(request: Request, exc: Exception) -> JSONResponse:
    # A value the parameter types let through but a column cannot hold (e.g. a policy
    # version inside TOML). Logged with its traceback: a type should catch it next time.
    log.warning(
        "%s %s: value refused by the database", request.method, request.url.path, exc_info=exc
    )
    return JSONResponse(
        {"detail": "a value is out of range or not valid for storage"}, status_code=422
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the app-wide handlers on ``app``."""
    for unavailable in (
        sa.OperationalError,  # server down, restarting, connection refused
        sa.InterfaceError,  # connection closed under us
        sa.TimeoutError,  # no pooled connection came free
        psycopg.OperationalError,  # code that uses psycopg directly
    ):
        app.add_exception_handler(unavailable, _unavailable)
    app.add_exception_handler(sa.DataError, _bad_value)
    # FastAPI's own handlers echo the input with UTF-8 JSON, which fails (500) on the
    # very values they refuse; these answer the same, safely encoded.
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http_error)
