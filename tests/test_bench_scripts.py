"""Every benchmark script still starts: its imports resolve and it answers ``--help``.

The benchmarks are not run by the suite (they take minutes and print figures, not
verdicts), so nothing else would notice one that no longer imports after a refactor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if '__name__ == "__main__"' in p.read_text())


def test_the_scripts_are_found() -> None:
    assert len(SCRIPTS) >= 7  # a module shared by the scripts (http_load.py) is not one


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_the_benchmark_starts(script: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout
