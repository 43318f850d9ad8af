"""Commands print what was asked, refuse what they cannot do, and start nothing they
do not need (the real ``dunning`` command, in a subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEFAULT_POLICY = REPO / "config" / "policies" / "default.toml"


def _dunning(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dunning.cli", *args],
        cwd=REPO,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.usefixtures("services")
def test_a_command_prints_its_answer_and_no_logs() -> None:
    done = _dunning("migrate")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "database schema is up to date\n"
    assert done.stderr == ""


@pytest.mark.usefixtures("services")
def test_verbose_shows_the_logs() -> None:
    done = _dunning("--verbose", "migrate")
    assert done.returncode == 0 and "INFO" in done.stderr


@pytest.mark.usefixtures("services")
def test_unknown_filter_values_are_refused_with_the_valid_ones() -> None:
    state = _dunning("cases", "list", "--state", "bogus")
    assert state.returncode == 2
    assert "'open'" in state.stderr and "'recovered'" in state.stderr
    klass = _dunning("cases", "list", "--decline-class", "sometimes")
    assert klass.returncode == 2 and "'insufficient_funds'" in klass.stderr
    date = _dunning("cases", "list", "--opened-from", "yesterday-ish")
    assert date.returncode == 2


def test_a_policy_file_preview_needs_no_database(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DUNNING_")}
    env.update(
        DUNNING_DATA_DIR=str(tmp_path / "data"),
        DUNNING_DATABASE_URL="postgresql://postgres@127.0.0.1:1/nowhere",  # nothing listens
        DUNNING_REDIS_URL="redis://127.0.0.1:1/0",
    )
    done = _dunning(
        "policy",
        "preview",
        "--file",
        str(DEFAULT_POLICY),
        "--decline-code",
        "expired_card",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "policy default" in done.stdout and done.stderr == ""
    assert not (tmp_path / "data").exists()  # no embedded database was started either
