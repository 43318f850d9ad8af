"""The alert tests run against Postgres and Redis, with a local webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.alerts.receiver import Receiver


@pytest.fixture(autouse=True)
def _services(clean_db: None) -> None:
    """Postgres (emptied) and Redis."""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as server:
        yield server
