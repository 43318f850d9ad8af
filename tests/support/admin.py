"""API keys and policy texts for the admin and policy-store tests."""

from __future__ import annotations

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


def policy_text(version: int = 2, *, name: str = "default", max_attempts: int = 8) -> str:
    """The default policy's TOML with another name, version or attempt limit."""
    text = default_text()
    for old, new in (
        ('\nname = "default"\n', f'\nname = "{name}"\n'),
        ("\nversion = 1\n", f"\nversion = {version}\n"),
        ("\nmax_attempts = 8\n", f"\nmax_attempts = {max_attempts}\n"),
    ):
        assert old in text
        text = text.replace(old, new)
    return text
