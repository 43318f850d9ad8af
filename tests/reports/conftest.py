"""Every test here reads or writes the ledger: the backing services start for them."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _services(services: None) -> None:
    """Postgres (migrated) and Redis, started once per session on first use."""
