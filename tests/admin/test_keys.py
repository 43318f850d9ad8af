"""API keys: hashed at rest, roles enforced on the HTTP API, changes audited."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from dunning.admin.audit import record_audit
from dunning.admin.auth import CHANGE_ROLES, READ_ROLES, KeyRefused, check_key, header_key
from dunning.admin.keys import ApiKeyError, authenticate, create_api_key, revoke_api_key
from dunning.admin.models import Role
from dunning.db import session_scope
from tests.support.admin import bearer, make_key, shipped_version
from tests.support.ledger import rows, scalar
from tests.support.servers import WebServer


def test_the_plaintext_is_returned_once_and_only_its_hash_is_stored(clean_db: None) -> None:
    with session_scope() as session:
        key = create_api_key(session, "alice", "ops", actor="tests")
    assert key.startswith("dk_ops_") and len(key) > 40
    [row] = rows("SELECT name, role, key_prefix, key_hash, revoked_at FROM api_keys")
    assert row["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert row["key_prefix"] == key[: len("dk_ops_") + 8]
    secret = key[len(row["key_prefix"]) :]
    everything = scalar("SELECT string_agg(t::text, ' ') FROM (SELECT * FROM api_keys) t") + scalar(
        "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM audit_log) t"
    )
    assert key not in everything and secret not in everything
    [audit] = rows("SELECT actor, action, target_type, details FROM audit_log")
    assert audit["actor"] == "tests" and audit["action"] == "api_key.create"
    assert audit["details"]["role"] == "ops"


def test_authenticate_matches_live_keys_only(clean_db: None) -> None:
    key = make_key("finance", "bob")
    with session_scope() as session:
        actor = authenticate(session, key)
        assert actor is not None and (actor.name, actor.role) == ("bob", "finance")
        assert authenticate(session, key[:-1]) is None
        assert authenticate(session, "") is None
        assert revoke_api_key(session, "bob", actor="tests") is True
        assert authenticate(session, key) is None
        assert revoke_api_key(session, "bob", actor="tests") is False  # no second audit row
    actions = [r["action"] for r in rows("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["api_key.create", "api_key.revoke"]


def test_names_are_unique_and_roles_known(clean_db: None) -> None:
    make_key("ops", "carol")
    with session_scope() as session, pytest.raises(ApiKeyError, match="already exists"):
        create_api_key(session, "carol", "finance", actor="tests")
    with session_scope() as session, pytest.raises(ApiKeyError, match="unknown role"):
        create_api_key(session, "dave", "admin", actor="tests")
    with session_scope() as session, pytest.raises(ApiKeyError, match="invalid key name"):
        create_api_key(session, "cli:root", "ops", actor="tests")
    with session_scope() as session, pytest.raises(ApiKeyError, match="no API key"):
        revoke_api_key(session, "nobody", actor="tests")
    assert scalar("SELECT count(*) FROM api_keys") == 1


def test_an_audit_row_commits_or_rolls_back_with_the_change(clean_db: None) -> None:
    with pytest.raises(RuntimeError), session_scope() as session:
        record_audit(session, "tests", "case.pause", "dunning_case", 7, {"why": "x"})
        raise RuntimeError("the change failed")
    assert scalar("SELECT count(*) FROM audit_log") == 0
    with session_scope() as session:
        record_audit(session, "tests", "case.pause", "dunning_case", 7, {"why": "x"})
    [row] = rows("SELECT actor, action, target_type, target_id, details, at FROM audit_log")
    assert row["target_id"] == "7" and row["details"] == {"why": "x"} and row["at"] is not None


def test_http_roles(web: WebServer) -> None:
    ops, finance = make_key("ops", "ops-1"), make_key("finance", "fin-1")
    revoked = make_key("ops", "ops-old")
    with session_scope() as session:
        revoke_api_key(session, "ops-old", actor="tests")
    http = httpx.Client(base_url=web.url, timeout=10)
    url = "/api/policies"

    missing = http.get(url)
    assert missing.status_code == 401
    assert "missing API key" in missing.json()["detail"]
    assert missing.headers["www-authenticate"] == "Bearer"
    assert http.get(url, headers=bearer("dk_ops_guessed")).status_code == 401
    assert http.get(url, headers={"Authorization": f"Basic {ops}"}).status_code == 401
    gone = http.get(url, headers=bearer(revoked))
    assert gone.status_code == 401 and gone.json() == {"detail": "unknown or revoked API key"}

    assert http.get(url, headers=bearer(finance)).status_code == 200
    assert http.get(url, headers={"X-API-Key": finance}).status_code == 200
    assert http.get(url, headers=bearer(ops)).status_code == 200

    denied = http.post(url, content="x", headers=bearer(finance))
    assert denied.status_code == 403
    assert "needs ops" in denied.json()["detail"]
    activate = f"{url}/default/{shipped_version()}/activate"
    denied = http.post(activate, headers={"X-API-Key": finance})
    assert denied.status_code == 403
    assert http.post(activate, headers=bearer(revoked)).status_code == 401
    assert http.post(activate, headers=bearer(ops)).status_code == 200


def test_one_key_check_serves_the_api_and_the_dashboard(clean_db: None) -> None:
    """The role rule is ``check_key``'s alone; the API turns refusals into 401/403."""
    finance = make_key("finance", "fin-2")
    actor = check_key(f" {finance} ", READ_ROLES)
    assert (actor.name, actor.role) == ("fin-2", Role.FINANCE) and actor.role == "finance"
    for key, allowed, status in (
        (None, READ_ROLES, 401),
        ("", READ_ROLES, 401),
        ("dk_ops_guessed", READ_ROLES, 401),
        (finance, CHANGE_ROLES, 403),
    ):
        with pytest.raises(KeyRefused) as refused:
            check_key(key, allowed)
        assert refused.value.status == status
    assert "has role 'finance'; this needs ops" in str(refused.value)
    assert header_key({"authorization": f"Bearer {finance}"}) == finance
    assert header_key({"authorization": f"Bearer {finance}", "x-api-key": "other"}) == finance
    assert header_key({"x-api-key": finance}) == finance
    assert header_key({"authorization": f"Basic {finance}"}) is None
