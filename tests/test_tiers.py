"""Pure tests need no server: a run of one, with every way of reaching a server blocked,
passes and sets up no server fixture. Guards the root conftest against starting Postgres
or Redis at import time again, or making every test depend on them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PURE = "tests/ledger/test_stripe_objects.py"  # small, and imports the project as tests do
BLOCKED = ("-p", "tests.support.no_servers")  # sockets, libpq and child processes raise


def test_a_pure_module_runs_with_no_server() -> None:
    servers = ("DUNNING_DATABASE_URL", "DUNNING_REDIS_URL")
    env = {k: v for k, v in os.environ.items() if k not in servers}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *BLOCKED, PURE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no_servers: no server fixture, connection or child process" in done.stdout
