"""Real ``dunning worker`` processes that a test starts, SIGKILLs and restarts.

Each worker runs ``python -m dunning.cli worker`` in a session of its own, so a kill
takes its whole process tree (the Celery main process and its pool child) at once, as
a machine losing power would; nothing is shut down cleanly and nothing is acknowledged.
Its output goes to a log file per incarnation, which the test reads for the errors the
service logs (``died in N dispatches``).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil
import redis
from sqlalchemy import text

from dunning import queue
from dunning.db import get_engine
from tests.support.stripe_events import REPO

# Kombu's Redis transport: each queue is a list; a message delivered to a worker
# and not yet acknowledged waits in this hash (a killed worker's stays there).
QUEUE_KEYS = (queue.DEFAULT_QUEUE, queue.EVENTS_QUEUE)
UNACKED_KEY = "unacked"
# About how long ``dunning worker`` takes to start consuming on a busy two-core machine.
BOOT_SECONDS = 6.0


@dataclass
class Workers:
    """``count`` worker processes sharing ``env``; logs under ``log_dir``."""

    env: Mapping[str, str]
    log_dir: Path
    count: int = 2
    procs: list[subprocess.Popen[bytes] | None] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    kills: int = 0
    started: list[float] = field(default_factory=list)
    _files: list[IO[bytes]] = field(default_factory=list)

    def __enter__(self) -> Workers:
        self.procs = [None] * self.count
        self.started = [0.0] * self.count
        for slot in range(self.count):
            self.start(slot)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def start(self, slot: int) -> None:
        path = self.log_dir / f"worker-{slot}-{len(self.logs)}.log"
        out = path.open("wb")
        self._files.append(out)
        self.logs.append(path)
        self.procs[slot] = subprocess.Popen(
            [sys.executable, "-m", "dunning.cli", "worker"],
            cwd=REPO,
            env=dict(self.env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: one killpg takes the tree
        )
        self.started[slot] = time.monotonic()

    def pick(self, rng: random.Random, boot: float = BOOT_SECONDS) -> int:
        """A worker to kill: any, but one still starting up (it holds no work yet) only
        when all are."""
        now = time.monotonic()
        ready = [s for s in range(self.count) if now - self.started[s] >= boot]
        return rng.choice(ready or list(range(self.count)))

    def connected_to(self, port: int) -> list[int]:
        """Workers with a TCP connection open to ``port`` on loopback (an SMTP send in
        progress, say)."""
        found = []
        for slot, proc in enumerate(self.procs):
            if proc is None:
                continue
            try:
                main = psutil.Process(proc.pid)
                tree = [main, *main.children(recursive=True)]
                conns = [c for p in tree for c in p.net_connections(kind="tcp")]
            except psutil.Error:
                continue
            if any(c.raddr and c.raddr.port == port for c in conns):
                found.append(slot)
        return found

    def kill(self, slot: int) -> None:
        """SIGKILL the worker's whole process tree and reap it."""
        proc = self.procs[slot]
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        self.procs[slot] = None

    def kill_and_restart(self, slot: int) -> None:
        self.kill(slot)
        self.kills += 1
        self.start(slot)

    def stop_all(self) -> None:
        """Kill every worker (always called, whatever the test did)."""
        for slot in range(len(self.procs)):
            self.kill(slot)
        for out in self._files:
            out.close()
        self._files.clear()

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())


def broker(sock: Path) -> redis.Redis:
    return redis.Redis(unix_socket_path=str(sock))


def _state(client: redis.Redis, extra: object) -> tuple[object, ...]:
    """Everything that moves while a live worker works: the queue, the unacknowledged
    messages, the action and notification rows, unhandled events, and ``extra``."""
    with get_engine().connect() as conn:
        actions, notes, unhandled = conn.execute(
            text(
                """
                SELECT
                  (SELECT md5(coalesce(string_agg(concat_ws(':', id, status, attempts,
                          started_attempt, crashes, due_at), ',' ORDER BY id), ''))
                     FROM scheduled_actions),
                  (SELECT md5(coalesce(string_agg(concat_ws(':', id, status, attempts),
                          ',' ORDER BY id), ''))
                     FROM notifications),
                  (SELECT count(*) FROM processor_events WHERE handled_at IS NULL)
                """
            )
        ).one()
    return (
        sum(client.llen(key) for key in QUEUE_KEYS),
        tuple(sorted(client.hkeys(UNACKED_KEY))),
        actions,
        notes,
        unhandled,
        extra,
    )


def wait_quiet(
    client: redis.Redis,
    quiet: float,
    timeout: float,
    extra: Callable[[], object] | None = None,
) -> float:
    """Wait until the live workers have nothing left to do: the queue is empty and
    nothing (broker, rows, ``extra()``) has changed for ``quiet`` seconds. Returns the
    seconds waited.

    Only then may the test's clock jump past the lease: a reclaim must find dispatches
    whose worker died, never overtake one still running (in production the lease is
    minutes and a dispatch takes well under a second)."""
    began = time.monotonic()
    last = _state(client, extra() if extra else None)
    since = time.monotonic()
    while time.monotonic() - began < timeout:
        time.sleep(0.1)
        now_state = _state(client, extra() if extra else None)
        if now_state != last:
            last, since = now_state, time.monotonic()
        elif now_state[0] == 0 and time.monotonic() - since >= quiet:
            return time.monotonic() - began
    raise AssertionError(f"the workers did not go quiet in {timeout} s")
