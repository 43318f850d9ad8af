"""A pytest plugin proving a run needs no server (``pytest -p tests.support.no_servers``).

Network connections (Python sockets and libpq through psycopg) and child processes raise,
so nothing can reach the machine's Postgres or Redis nor start an embedded one; and a run
in which any server fixture was set up fails, even if that fixture's error was swallowed.
"""

from __future__ import annotations

import socket
import subprocess
from typing import Any, NoReturn

import psycopg
import pytest

SERVER_FIXTURES = frozenset(
    {"database_url", "redis_server", "services", "stripe_base", "celery_worker", "web"}
)
_used: list[str] = []


class ServerUsed(RuntimeError):
    """Raised where a run that must need no server reached for one."""


def _refuse(what: str) -> NoReturn:
    raise ServerUsed(f"{what} in a run that must need no server (tests.support.no_servers)")


def _no_connect(self: socket.socket, address: Any) -> NoReturn:
    _refuse(f"a connection to {address!r}")


def _no_process(self: subprocess.Popen[Any], args: Any, *_: Any, **__: Any) -> NoReturn:
    _refuse(f"a child process {args!r}")


def _no_postgres(*args: Any, **kwargs: Any) -> NoReturn:
    _refuse("a Postgres connection")


def pytest_configure(config: pytest.Config) -> None:
    mp = pytest.MonkeyPatch()
    mp.setattr(socket.socket, "connect", _no_connect)
    mp.setattr(socket.socket, "connect_ex", _no_connect)
    mp.setattr(subprocess.Popen, "__init__", _no_process)
    mp.setattr(psycopg, "connect", _no_postgres)
    mp.setattr(psycopg.Connection, "connect", _no_postgres)
    config.add_cleanup(mp.undo)


def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> None:
    if fixturedef.argname in SERVER_FIXTURES:
        _used.append(f"{fixturedef.argname} (for {request.node.nodeid or 'the session'})")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _used:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _used:
        terminalreporter.write_line("no_servers: server fixtures were set up: " + ", ".join(_used))
    else:
        terminalreporter.write_line("no_servers: no server fixture, connection or child process")
