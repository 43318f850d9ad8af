"""API keys and policy texts for the admin and policy-store tests."""

from __future__ import annotations

import re

from dunning.db import session_scope
from dunning.policy.activation import DEFAULT_POLICY_FILE


def make_key(role: str, name: str | None = None) -> str:
    """A new key of ``role``, committed; returns the plaintext."""
    from dunning.admin.keys import create_api_key

    with session_scope() as session:
        return create_api_key(session, name or f"test-{role}", role, actor="tests")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def default_text() -> str:
    return DEFAULT_POLICY_FILE.read_text(encoding="utf-8")


def shipped_version() -> int:
    """The version of the shipped default policy file."""
    found = re.search(r"^version = (\d+)$", default_text(), re.M)
    assert found is not None
    return int(found.group(1))


def policy_text(version: int = 2, *, name: str = "default", max_attempts: int = 8) -> str:
    """The default policy's TOML with another name, version or attempt limit.

    Versions count from the shipped file's: ``policy_text(1)`` has the shipped version
    number, ``policy_text(2)`` the next one."""
    text = default_text()
    for pattern, new in (
        (r'^name = "default"$', f'name = "{name}"'),
        (r"^version = \d+$", f"version = {shipped_version() + version - 1}"),
        (r"^max_attempts = \d+$", f"max_attempts = {max_attempts}"),
    ):
        text, count = re.subn(pattern, new, text, count=1, flags=re.M)
        assert count == 1, pattern
    return text
